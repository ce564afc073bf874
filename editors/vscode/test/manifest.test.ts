// The manifest and the code must agree: every command the code registers is
// contributed with a title, key and menu entry, and every server setting has
// a configuration property.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { EDITOR_COMMANDS, SERVER_COMMANDS } from '../src/commands';
import { SERVER_KEYS } from '../src/settings';

const pkg = JSON.parse(readFileSync(`${__dirname}/../../package.json`, 'utf8'));
const contributes = pkg.contributes;

test('the three editing commands have titles, keybindings and context-menu entries', () => {
  const titles: Record<string, string> = { infill: 'Infill Selection', rewrite: 'Rewrite Selection', fillHoles: 'Fill Holes' };
  for (const [kind, id] of Object.entries(EDITOR_COMMANDS)) {
    const c = contributes.commands.find((x: { command: string }) => x.command === id);
    assert.ok(c, `${id} not contributed`);
    assert.equal(`${c.category}: ${c.title}`, `Diffill: ${titles[kind]}`);
    assert.ok(contributes.keybindings.some((k: { command: string; key: string }) => k.command === id && k.key), `${id} has no keybinding`);
    assert.ok(contributes.menus['editor/context'].some((m: { command: string }) => m.command === id), `${id} not in the context menu`);
  }
});

test('editor command ids never collide with the server commands the client registers', () => {
  const mine = new Set(contributes.commands.map((c: { command: string }) => c.command));
  for (const id of Object.values(SERVER_COMMANDS)) assert.ok(!mine.has(id), `${id} would clash with vscode-languageclient`);
});

test('every server setting is a contributed property', () => {
  const props = contributes.configuration.properties;
  for (const k of SERVER_KEYS) assert.ok(props[`diffill.${k}`], `diffill.${k} missing from package.json`);
  assert.ok(props['diffill.path']);
  assert.ok(props['diffill.trace.server'], 'vscode-languageclient reads <id>.trace.server');
});

test('keybindings are distinct', () => {
  const keys = contributes.keybindings.map((k: { key: string }) => k.key);
  assert.equal(new Set(keys).size, keys.length);
});

test('engines and the languageclient agree (vscode-languageclient 11 needs ^1.91)', () => {
  assert.equal(pkg.engines.vscode, '^1.91.0');
  assert.equal(pkg.dependencies['vscode-languageclient'], '11.0.0');
  assert.equal(pkg.main, './dist/extension.js');
});

test('Go defaults let ghost text and the completion list work together (issue 11 item 3)', () => {
  // Without them, quick suggestions open the list as the user types, over the ghost text, and Tab accepts the list's
  // item; the e2e test (TestEndToEnd) shows it in a real VS Code.
  const go = contributes.configurationDefaults['[go]'];
  assert.equal(go['editor.inlineSuggest.enabled'], true);
  assert.equal(go['editor.inlineSuggest.suppressSuggestions'], true);
  assert.deepEqual(go['editor.quickSuggestions'], { other: 'inline', comments: 'off', strings: 'off' });
});
