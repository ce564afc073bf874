import assert from 'node:assert/strict';
import { test } from 'node:test';
import { changeKind, documentSelector, expandPath, isServed, mapServerSettings, modelLabel, SERVER_KEYS } from '../src/settings';

const ctx = { home: '/home/u', workspaceFolder: '/ws' };
const from = (o: Record<string, unknown>) => (k: string) => o[k];

const allNull = Object.fromEntries(SERVER_KEYS.map((k) => [k, null]));

test('unset and zero values are sent as null (the server resets them to its default), temperature 0 is a value', () => {
  const { settings, problems } = mapServerSettings(
    from({ model: '', device: '', steps: 0, sampler: '', temperature: 0, maxTokens: 0, contextTokens: 0, holeMarker: '', debounce: 0 }),
    ctx,
  );
  assert.deepEqual(settings, { ...allNull, temperature: 0 });
  assert.deepEqual(problems, []);
  assert.deepEqual(mapServerSettings(from({ temperature: null }), ctx).settings, allNull);
});

test('every server setting maps to its wire name', () => {
  const { settings, problems } = mapServerSettings(
    from({
      model: '~/models/dream',
      device: 'cuda',
      steps: 16,
      sampler: 'margin',
      temperature: 0.7,
      maxTokens: 64.4,
      contextTokens: 2048,
      holeMarker: '/*?*/',
      debounce: 75,
    }),
    ctx,
  );
  assert.deepEqual(problems, []);
  assert.deepEqual(settings, {
    model: '/home/u/models/dream',
    device: 'cuda',
    steps: 16,
    sampler: 'margin',
    temperature: 0.7,
    maxTokens: 64,
    contextTokens: 2048,
    holeMarker: '/*?*/',
    debounce: 75,
  });
  assert.deepEqual(Object.keys(settings).sort(), [...SERVER_KEYS].sort());
  assert.ok(Object.values(settings).every((v) => v !== null));
});

test('bad values are dropped with a message naming the setting', () => {
  const { settings, problems } = mapServerSettings(
    from({ steps: -3, sampler: 'greedy', device: 'tpu', temperature: 'hot', maxTokens: 1e9, holeMarker: 7 }),
    ctx,
  );
  assert.deepEqual(settings, allNull);
  assert.equal(problems.length, 6);
  for (const key of ['steps', 'sampler', 'device', 'temperature', 'maxTokens', 'holeMarker']) {
    assert.ok(problems.some((p) => p.startsWith(`diffill.${key}:`)), `no problem reported for ${key}: ${problems}`);
  }
});

test('numbers given as strings (settings.json by hand) are accepted', () => {
  assert.deepEqual(mapServerSettings(from({ steps: '8', temperature: '0.5' }), ctx).settings, { ...allNull, steps: 8, temperature: 0.5 });
});

test('expandPath expands ~ and ${workspaceFolder} only where they mean that', () => {
  assert.equal(expandPath('~/bin/diffill', ctx), '/home/u/bin/diffill');
  assert.equal(expandPath('~', ctx), '/home/u');
  assert.equal(expandPath('/opt/~x', ctx), '/opt/~x');
  assert.equal(expandPath('${workspaceFolder}/bin/diffill', ctx), '/ws/bin/diffill');
  assert.equal(expandPath('${workspaceFolder}/x', { home: '/h' }), '${workspaceFolder}/x');
});

test('changeKind: path and languages restart the server, model settings are sent', () => {
  const only = (s: string) => (x: string) => x === s || s.startsWith(x + '.') || x === 'diffill';
  assert.equal(changeKind(only('diffill.path')), 'restart');
  assert.equal(changeKind(only('diffill.languages')), 'restart');
  assert.equal(changeKind(only('diffill.steps')), 'notify');
  assert.equal(changeKind(only('diffill.holeMarker')), 'notify');
  assert.equal(changeKind((x) => x === 'diffill.showStepText'), 'none');
  assert.equal(changeKind(() => false), 'none');
});

test('modelLabel names the checkpoint directory', () => {
  assert.equal(modelLabel({}), 'built-in');
  assert.equal(modelLabel({ model: null }), 'built-in');
  assert.equal(modelLabel({ model: '/data/Dream-Coder-v0-Instruct-7B/' }), 'Dream-Coder-v0-Instruct-7B');
  assert.equal(modelLabel({ model: 'C:\\models\\llada' }), 'llada');
});

test('documentSelector and isServed agree', () => {
  assert.deepEqual(documentSelector(['go']), [
    { scheme: 'file', language: 'go' },
    { scheme: 'untitled', language: 'go' },
  ]);
  assert.deepEqual(documentSelector(['*', 'go']), [{ scheme: 'file' }, { scheme: 'untitled' }]);
  assert.ok(isServed(['go'], 'go', 'file'));
  assert.ok(!isServed(['go'], 'python', 'file'));
  assert.ok(!isServed(['go'], 'go', 'git'));
  assert.ok(isServed(['*'], 'python', 'untitled'));
  assert.ok(isServed('nonsense', 'rust', 'file'), 'a malformed setting serves everything rather than nothing');
});
