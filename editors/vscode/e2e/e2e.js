// End-to-end check of the Diffill extension in a real VS Code (code-server)
// driven through Debian's Chromium, against the real `diffill serve`.
// vscode_test.go starts code-server with the .vsix installed and runs this:
//   DIFFILL_E2E_SCENARIO=main|bad-model|not-found|edits DIFFILL_E2E_URL=http://127.0.0.1:PORT/?folder=WS \
//   DIFFILL_E2E_FILE=WS/a.go DIFFILL_E2E_SHOTS=DIR DIFFILL_E2E_USER_DATA=DIR node e2e.js
// The editor runs with VS Code's default editor settings (quick suggestions on).
// It prints one JSON line {ok, steps: [...], error?} and exits non-zero on failure.
'use strict';

const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { execFileSync } = require('node:child_process');
const { chromium } = require('playwright-core');

const url = mustEnv('DIFFILL_E2E_URL');
const file = mustEnv('DIFFILL_E2E_FILE');
const shots = mustEnv('DIFFILL_E2E_SHOTS');
const SLOW = Number(process.env.DIFFILL_E2E_TIMEOUT_MS || 120000);
const chromiumPath = process.env.DIFFILL_E2E_CHROMIUM || '/usr/bin/chromium';
const userData = mustEnv('DIFFILL_E2E_USER_DATA');
const HOLE = '/*?*/';
const scenario = process.env.DIFFILL_E2E_SCENARIO || 'main';

function mustEnv(k) {
  const v = process.env[k];
  if (!v) throw new Error(`${k} not set`);
  return v;
}

const steps = [];
const t0 = Date.now();
function step(what, detail) {
  const s = { t: ((Date.now() - t0) / 1000).toFixed(1), what, ...(detail ? { detail } : {}) };
  steps.push(s);
  process.stderr.write(`[${s.t}s] ${what}${detail ? ': ' + JSON.stringify(detail) : ''}\n`);
}

// 1-based line of the first line containing marker in the file on disk.
function lineOf(marker) {
  const i = fs.readFileSync(file, 'utf8').split('\n').findIndex((l) => l.includes(marker));
  if (i < 0) throw new Error(`fixture has no ${marker}`);
  return i + 1;
}

// The first file called name under dir (VS Code keeps each output channel's log in a file of its own).
function findFile(dir, name) {
  let entries;
  try {
    entries = fs.readdirSync(dir, { withFileTypes: true });
  } catch {
    return undefined;
  }
  for (const e of entries) {
    const p = path.join(dir, e.name);
    if (e.isFile() && e.name === name) return p;
    if (e.isDirectory()) {
      const f = findFile(p, name);
      if (f) return f;
    }
  }
  return undefined;
}

async function waitFor(what, timeoutMs, fn) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

// The full tour: ghost text and Tab with default settings, completion list, Fill Holes, Rewrite, Infill, a setting
// change, the log.
async function scenarioMain(E) {
  const { page, shot, editorText, statusText, errorToasts, palette, save, gotoLine, suggestVisible, suggestRows } = E;
  await E.openFile();
  // The status bar item appears when the extension starts the server; idle once initialize is answered.
  const idle = await waitFor('the Diffill status bar item to say the server is up', SLOW, async () => {
    const s = await statusText();
    return /diffill \S+ · cpu/.test(s) && s;
  });
  step('status bar', idle);

  // Ghost text with VS Code's default quick suggestions: a new line under GHOST_HERE, type the start of a word as a
  // user does. The word list may open too; Tab must accept the ghost text, not a word from the list.
  await gotoLine(lineOf('GHOST_HERE'));
  await page.keyboard.press('End');
  await page.keyboard.press('Enter');
  const typed = 'return';
  await page.keyboard.type(typed, { delay: 120 });
  const ghost = page.locator('.ghost-text-decoration, .ghost-text').first();
  // Visible, and more than blanks (the tiny model may answer a space, which says nothing about what Tab took).
  const ghostShown = async () => (await ghost.isVisible()) && /\S/.test((await page.locator('.ghost-text-decoration, .ghost-text').allInnerTexts()).join(''));
  const deadline = Date.now() + SLOW;
  while (!(await ghostShown())) {
    if (Date.now() > deadline) throw new Error('no ghost text within the time limit');
    await page.waitForTimeout(700);
    if (await ghostShown()) break;
    // Keys typed before the extension activated, or answered while the model loaded, bring nothing: type on.
    await page.keyboard.press('Backspace');
    await page.keyboard.type(typed.slice(-1));
  }
  // Let the list (if any) settle: what a user sees a moment after the ghost text appears.
  await page.waitForTimeout(800);
  const ghostText = (await page.locator('.ghost-text-decoration, .ghost-text').allInnerTexts()).join('').replace(/\u00a0/g, ' ');
  const listOpen = await suggestVisible();
  step('ghost text shown', { ghostText, wordListOpen: listOpen, list: listOpen ? await suggestRows() : [] });
  await shot('1-ghost-text.png');

  await page.keyboard.press('Tab');
  await waitFor('the ghost text to be accepted', 10000, async () => !(await ghost.isVisible()));
  await save();
  const saved = await waitFor('the accepted text on disk', 10000, async () => {
    const l = fs.readFileSync(file, 'utf8').split('\n')[lineOf('GHOST_HERE')];
    return l !== undefined && l.trim() !== typed && l;
  }).catch(() => fs.readFileSync(file, 'utf8').split('\n')[lineOf('GHOST_HERE')]);
  step('accepted with Tab; line on disk', saved);
  await shot('2-accepted.png');
  // What Tab put after the typed word is the ghost text (its first line), not a word from the list: spaces aside,
  // the one starts the other.
  const rest = saved.trim().startsWith(typed) ? saved.trim().slice(typed.length).replace(/\s+/g, '') : undefined;
  const shown = ghostText.replace(/\s+/g, '');
  if (!rest || !(shown.startsWith(rest) || rest.startsWith(shown))) {
    throw new Error(`Tab did not accept the ghost text ${JSON.stringify(ghostText)}: the line is ${JSON.stringify(saved.trim())}`);
  }

  // Completion items: Ctrl+Space on a new line.
  await page.keyboard.press('End');
  await page.keyboard.press('Enter');
  await page.keyboard.type('x', { delay: 60 });
  await page.keyboard.press('Escape'); // dismiss ghost text so Ctrl+Space opens the list
  await page.keyboard.press('Control+Space');
  const row = page.locator('.suggest-widget .monaco-list-row').first();
  await row.waitFor({ timeout: SLOW });
  const rows = await page.locator('.suggest-widget .monaco-list-row').allInnerTexts();
  step('completion list', rows.slice(0, 3).map((r) => r.replace(/\s+/g, ' ').trim()));
  await shot('2b-completion-list.png');
  await page.keyboard.press('Escape');
  await save();

  // Fill Holes from the command palette.
  const before = fs.readFileSync(file, 'utf8');
  if (!before.includes(HOLE)) throw new Error('fixture has no holes');
  await palette('Diffill: Fill Holes');
  step('ran Diffill: Fill Holes');
  await waitFor('the holes to be filled', SLOW, async () => {
    const errs = await errorToasts();
    if (errs.length) throw new Error(`error notification: ${errs.join(' | ')}`);
    return !(await editorText()).includes(HOLE);
  });
  await save();
  const filled = await waitFor('the filled file on disk', 10000, async () => {
    const t = fs.readFileSync(file, 'utf8');
    return !t.includes(HOLE) && t;
  });
  step('holes filled', filled.split('\n').filter((l) => /^\s*return /.test(l)).map((l) => l.trim()));
  await gotoLine(1);
  await shot('3-holes-filled.png');

  // The fill is one undo step.
  await page.keyboard.press('Control+z');
  await waitFor('one undo to bring the holes back', 10000, async () => (await editorText()).split(HOLE).length - 1 === 2);
  step('one Ctrl+Z restored both holes');
  await page.keyboard.press('Control+Shift+z');
  await waitFor('redo', 10000, async () => !(await editorText()).includes(HOLE));

  // Rewrite a selected line from the palette; its progress shows as a notification.
  await gotoLine(lineOf('REWRITE_HERE') + 1);
  await page.keyboard.press('Home');
  await page.keyboard.press('Shift+End');
  await palette('Diffill: Rewrite Selection');
  step('ran Diffill: Rewrite Selection');
  const progress = page.locator('.notification-toast', { hasText: 'Diffill: Rewriting' }).first();
  let sawProgress = false;
  await waitFor('the rewrite progress notification to come and go', SLOW, async () => {
    const errs = await errorToasts();
    if (errs.length) throw new Error(`error notification: ${errs.join(' | ')}`);
    if (await progress.isVisible()) {
      if (!sawProgress) {
        sawProgress = true;
        step('progress notification', (await progress.innerText()).replace(/\s+/g, ' '));
        await shot('4-rewrite-progress.png');
      }
      return false;
    }
    return sawProgress;
  });
  await save();
  const rewritten = fs.readFileSync(file, 'utf8').split('\n')[lineOf('REWRITE_HERE')];
  step('rewrote line', rewritten);

  // Infill a selection with the default keybinding: the selected comment is replaced by the model's code.
  await gotoLine(lineOf('INFILL_HERE'));
  await page.keyboard.press('End');
  await page.keyboard.press('Shift+Home');
  await page.keyboard.press('Control+Alt+Shift+I');
  step('pressed Ctrl+Alt+Shift+I (Diffill: Infill Selection) on "// INFILL_HERE"');
  await waitFor('the infill to replace the selection', SLOW, async () => {
    const errs = await errorToasts();
    if (errs.length) throw new Error(`error notification: ${errs.join(' | ')}`);
    const busy = await page.locator('.notification-toast', { hasText: 'Diffill: Infilling' }).count();
    return busy === 0 && !(await editorText()).includes('INFILL_HERE');
  });
  await save();
  step('infilled', fs.readFileSync(file, 'utf8').split('\n')[lineOf('for _, x := range xs') ]);

  // Change a setting in the Settings editor: the extension sends it to the running server, whose log says so.
  await palette('Preferences: Open User Settings');
  // The search box has the focus when the editor opens.
  await page.locator('.settings-editor').first().waitFor({ timeout: 20000 });
  await page.waitForTimeout(500);
  await page.keyboard.type('diffill.steps', { delay: 20 });
  const input = page.locator('.settings-editor .setting-item-contents', { hasText: 'Denoising steps' }).locator('input').first();
  await input.waitFor({ timeout: 20000 });
  await input.fill('4');
  await page.keyboard.press('Tab');
  const applied = await waitFor('the server to log the new setting', 30000, async () => {
    const log = findFile(path.join(userData, 'logs'), 'Diffill.log');
    // The server's own log line (zap: "serve<TAB>settings changed<TAB>{...}"), not the extension's.
    const line = log && fs.readFileSync(log, 'utf8').split('\n').find((l) => /serve\s+settings changed/.test(l) && /"steps": ?4/.test(l));
    return line;
  });
  await shot('5-settings.png');
  step('changed diffill.steps to 4; the server logged', applied.replace(/^\S+ \S+ /, '').slice(0, 160));

  // Click the status bar item: the log.
  await page.locator('.statusbar-item', { hasText: 'diffill' }).first().click();
  const channel = await waitFor('the Diffill output channel in the panel', 15000, async () => {
    const sel = page.locator('.part.panel select.monaco-select-box').first();
    if (!(await sel.count())) return false;
    const v = await sel.evaluate((el) => el.options[el.selectedIndex] && el.options[el.selectedIndex].text).catch(() => '');
    return v === 'Diffill' && v;
  });
  const logLines = (await page.locator('.part.panel .view-lines').first().innerText()).split('\n').filter((l) => l.trim());
  step('status bar click opened the output channel', { channel, lastLines: logLines.slice(-3) });
  step('status bar at the end', await statusText());
  await shot('6-log.png');

  const errs = await errorToasts();
  if (errs.length) throw new Error(`error notifications: ${errs.join(' | ')}`);
}

// diffill.model names a directory that does not exist: one message with the fix, no toast per keystroke, the output
// panel stays closed, the status bar is red with the reason until the setting changes; a good model then works.
async function scenarioBadModel(E) {
  const { page, shot, gotoLine } = E;
  await E.openFile();
  await waitFor('the Diffill status bar item', SLOW, async () => (await E.statusText()) !== '');
  await gotoLine(lineOf('GHOST_HERE'));
  await page.keyboard.press('End');
  await page.keyboard.press('Enter');
  let panelOpened = false;
  const seen = new Set();
  const watch = async () => {
    if (await E.panelVisible()) panelOpened = true;
    for (const t of await E.toasts()) seen.add(t);
  };
  // A user typing a statement, key by key, then a second one a little later.
  for (const text of ['return total', ' + 1']) {
    for (const ch of text) {
      await page.keyboard.type(ch);
      await page.waitForTimeout(200);
      await watch();
    }
    await page.waitForTimeout(1500);
    await watch();
  }
  const red = await waitFor('the status bar item to turn red', 30000, async () => {
    await watch();
    const s = await E.statusItem();
    return s && E.isRed(s.bg) && s;
  });
  step('status bar', red);
  await shot('1-bad-model.png');
  // The notification centre lists every notification, also those whose toast has hidden.
  await E.palette('Notifications: Show Notifications');
  await page.locator('.notifications-center').first().waitFor({ timeout: 10000 });
  await page.waitForTimeout(500);
  const centre = (await page.locator('.notifications-center .notification-list-item').allInnerTexts()).map((t) => t.replace(/\s+/g, ' ').trim());
  step('notifications', { centre, toastsSeen: [...seen] });
  await shot('2-notifications.png');

  const all = [...new Set([...centre, ...seen])];
  const raw = all.filter((t) => /Request textDocument|-32803|failed\./.test(t));
  if (raw.length) throw new Error(`raw request failures shown to the user: ${JSON.stringify(raw)}`);
  const about = centre.filter((t) => /could not load|diffill-model/.test(t));
  if (about.length !== 1) throw new Error(`want one notification about the model, got ${about.length}: ${JSON.stringify(centre)}`);
  if (!/config\.json/.test(about[0]) || !/built-in model/.test(about[0])) throw new Error(`the message does not say what a model directory holds and how to use the built-in model: ${about[0]}`);
  if (panelOpened) throw new Error('the output panel opened by itself');
  if (!/diffill-model|could not load/.test(red.tooltip)) throw new Error(`the status bar tooltip does not say why: ${JSON.stringify(red.tooltip)}`);

  // The user fixes the setting from the message's Open Settings button (here: to a real checkpoint): the status bar
  // leaves red, and ghost text comes.
  await page
    .locator('.notifications-center .notification-list-item', { hasText: /could not load/ })
    .first()
    .locator('.monaco-button', { hasText: 'Open Settings' })
    .first()
    .click({ timeout: 10000 });
  await page.locator('.settings-editor').first().waitFor({ timeout: 20000 });
  const input = page.locator('.settings-editor .setting-item-contents', { hasText: 'built-in Go model' }).locator('input').first();
  await input.waitFor({ timeout: 20000 });
  await input.fill(mustEnv('DIFFILL_E2E_TINY_MODEL'));
  await page.keyboard.press('Tab');
  const fixed = await waitFor('the status bar item to leave red', 30000, async () => {
    const s = await E.statusItem();
    return s && !E.isRed(s.bg) && s;
  });
  step('status bar after the setting changed', fixed);
  await page.locator('.tabs-container .tab', { hasText: path.basename(file) }).first().click();
  await page.locator('.editor-instance .view-lines').first().click();
  await gotoLine(lineOf('return total + 1'));
  await page.keyboard.press('End');
  const ghost = page.locator('.ghost-text-decoration, .ghost-text').first();
  await waitFor('ghost text from the good model', SLOW, async () => {
    if (await ghost.isVisible()) return true;
    await page.keyboard.press('Backspace');
    await page.keyboard.type('1');
    await page.waitForTimeout(700);
    return ghost.isVisible();
  });
  step('ghost text after the fix', (await ghost.innerText()).replace(/\u00a0/g, ' '));
  await shot('3-fixed.png');
  const after = await E.statusItem();
  if (E.isRed(after.bg)) throw new Error(`the status bar is red after the fix: ${JSON.stringify(after)}`);
}

// diffill.path names no binary: the notification says how to build diffill, and Open Settings shows the setting.
async function scenarioNotFound(E) {
  const { page, shot } = E;
  const problems = [];
  await E.openFile();
  const toast = page.locator('.notification-toast', { hasText: 'diffill' }).filter({ hasText: 'Open Settings' }).first();
  await toast.waitFor({ timeout: SLOW });
  const text = (await toast.innerText()).replace(/\s+/g, ' ').trim();
  step('notification', text);
  await shot('1-not-found.png');
  if (/@latest/.test(text)) problems.push(`the notification offers an install command the module proxy refuses: ${text}`);
  if (!/go install \.\/cmd\/diffill/.test(text)) problems.push(`the notification does not say how to build diffill from a clone: ${text}`);
  await toast.locator('.monaco-button', { hasText: 'Open Settings' }).first().click();
  await page.locator('.settings-editor').first().waitFor({ timeout: 20000 });
  const setting = page.locator('.settings-editor .setting-item-contents', { hasText: 'Path to the' }).first();
  const shown = await waitFor('the diffill.path setting in the Settings editor', 20000, async () => setting.isVisible()).catch(() => false);
  const tab = (await page.locator('.settings-editor .settings-tabs-widget .action-label.checked, .settings-editor .settings-tabs-widget .action-item.checked').allInnerTexts()).join(' ').trim();
  const query = await page.locator('.settings-editor .suggest-input-container .view-lines').first().innerText().catch(() => '');
  step('Open Settings', { tab, query: query.replace(/\u00a0/g, ' '), settingShown: shown });
  await shot('2-open-settings.png');
  if (!shown) problems.push(`Open Settings did not show diffill.path (tab ${JSON.stringify(tab)})`);
  else {
    const value = await setting.locator('input').first().inputValue();
    step('diffill.path in the Settings editor', value);
    if (value !== '/nonexistent/bin/diffill') problems.push(`the setting shown holds ${JSON.stringify(value)}, not the value in use`);
  }
  if (problems.length) throw new Error(problems.join('\n'));
}

// The Go function around 1-based line n of the file on disk, from its `func` line to its closing brace at column 0.
function funcAround(n) {
  const lines = fs.readFileSync(file, 'utf8').split('\n');
  if (n > lines.length) throw new Error(`the file on disk has ${lines.length} lines, fewer than the ${n} it had before the rewrite:\n${lines.join('\n')}`);
  let a = n - 1;
  while (a > 0 && !lines[a].startsWith('func ')) a--;
  let b = n - 1;
  while (b < lines.length && lines[b] !== '}') b++;
  return lines.slice(a, b + 1).join('\n');
}

// The parse error of a Go function, or '' when it parses (gofmt -e on it alone, in a package of its own).
function parseError(fn) {
  try {
    execFileSync(mustEnv('DIFFILL_E2E_GOFMT'), ['-e'], { input: 'package p\n\n' + fn + '\n', stdio: ['pipe', 'pipe', 'pipe'] });
    return '';
  } catch (err) {
    return String(err.stderr || err.message).trim();
  }
}

// Edits with the built-in model (issue 11 items 1 and 2): "Rewrite Selection" with nothing selected rewrites the
// cursor's line from character 0 and keeps its indentation and the function parsing; a completion typed inside
// the `)` VS Code auto-closes replaces that `)` instead of adding another.
async function scenarioEdits(E) {
  const { page, shot, gotoLine, save, errorToasts, palette, editorText } = E;
  await E.openFile();
  await waitFor('the Diffill status bar item to say the server is up', SLOW, async () => /diffill \S+ · cpu/.test(await E.statusText()));
  const problems = [];

  // Inside an auto-closed (: a new line before `return total`, type `return len(`; VS Code adds the `)`.
  await gotoLine(lineOf('return total') - 1);
  await page.keyboard.press('End');
  await page.keyboard.press('Enter');
  await page.keyboard.type('return len(', { delay: 120 });
  await page.keyboard.press('Escape'); // the word list, if it opened on `return`
  const typedLine = (await editorText()).split('\n').find((l) => l.includes('return len('));
  step('typed', typedLine);
  const ghost = page.locator('.ghost-text-decoration, .ghost-text').first();
  await waitFor('ghost text inside the parentheses', SLOW, async () => {
    if (await ghost.isVisible()) return true;
    // Retrigger: delete the ( with its closer and type it again.
    await page.keyboard.press('Backspace');
    await page.keyboard.type('(');
    await page.waitForTimeout(900);
    return ghost.isVisible();
  });
  await page.waitForTimeout(500);
  const shown = (await page.locator('.ghost-text-decoration').allInnerTexts()).join('|').replace(/\u00a0/g, ' ');
  await shot('1-ghost-in-parens.png');
  await page.keyboard.press('Tab');
  await save();
  const line = fs.readFileSync(file, 'utf8').split('\n').find((l) => l.includes('return len('));
  step('accepted inside the parentheses', { ghost: shown, line });
  const opens = (line.match(/\(/g) || []).length;
  const closes = (line.match(/\)/g) || []).length;
  if (opens !== closes) problems.push(`the completion did not replace the auto-closed ")": ${JSON.stringify(line)} (ghost ${JSON.stringify(shown)})`);

  // Rewrite the line `total += x` (two tabs in) with nothing selected.
  const n = lineOf('total += x');
  const before = fs.readFileSync(file, 'utf8').split('\n')[n - 1];
  await gotoLine(n);
  await page.keyboard.press('End');
  await palette('Diffill: Rewrite Selection');
  step('ran Diffill: Rewrite Selection with nothing selected', before);
  const progress = page.locator('.notification-toast', { hasText: 'Diffill: Rewriting' }).first();
  await page.waitForTimeout(500);
  await waitFor('the rewrite to finish', SLOW, async () => {
    const errs = await errorToasts();
    if (errs.length) throw new Error(`error notification: ${errs.join(' | ')}`);
    return !(await progress.isVisible());
  });
  await save();
  const after = fs.readFileSync(file, 'utf8').split('\n');
  const fn = funcAround(n);
  step('rewrote the line', { before, after: after[n - 1], func: fn });
  await shot('2-rewrite-line.png');
  const indent = /^\s*/.exec(before)[0];
  if (!after[n - 1].startsWith(indent) || /^\s/.test(after[n - 1].slice(indent.length)) || after[n - 1].trim() === '') {
    problems.push(`the rewrite did not keep the indentation ${JSON.stringify(indent)}: ${JSON.stringify(after[n - 1])}`);
  }
  const perr = parseError(fn);
  if (perr) problems.push(`after the rewrite the function does not parse (${perr}):\n${fn}`);
  if (problems.length) throw new Error(problems.join('\n'));
}

async function main() {
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'diffill-chromium-'));
  const ctx = await chromium.launchPersistentContext(profile, {
    executablePath: chromiumPath,
    headless: true,
    viewport: { width: 1280, height: 800 },
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  const page = ctx.pages()[0] || (await ctx.newPage());
  const shot = async (name) => {
    const p = path.join(shots, name);
    await page.screenshot({ path: p });
    step('screenshot', p);
  };
  const editorText = async () => (await page.locator('.editor-instance .view-lines').first().innerText()).replace(/\u00a0/g, ' ');
  const statusText = async () => {
    const item = page.locator('.statusbar-item', { hasText: 'diffill' }).first();
    return (await item.count()) > 0 ? (await item.innerText()).trim() : '';
  };
  const errorToasts = async () => page.locator('.notification-toast', { hasText: /diffill|Diffill/ }).filter({ has: page.locator('.codicon-error') }).allInnerTexts();
  const palette = async (command) => {
    await page.keyboard.press('F1');
    await page.locator('.quick-input-widget input').waitFor();
    await page.keyboard.type(command, { delay: 20 });
    await page.locator('.quick-input-list .monaco-list-row', { hasText: command.replace(/^Diffill: /, '') }).first().waitFor({ timeout: 10000 });
    await page.keyboard.press('Enter');
  };
  // Saves the active editor and waits (up to 5 s) for the file on disk to change, so what is read back is what the
  // editor shows. A save of an unchanged editor changes nothing, so the wait is not an error.
  const save = async () => {
    const before = fs.readFileSync(file, 'utf8');
    await page.keyboard.press('Control+s');
    await waitFor('the save', 5000, async () => fs.readFileSync(file, 'utf8') !== before).catch(() => {});
    // VS Code writes the file in place: a read in the middle of the write sees it cut short. Wait until two reads
    // a moment apart agree.
    let last = fs.readFileSync(file, 'utf8');
    await waitFor('the saved file to settle', 5000, async () => {
      await page.waitForTimeout(150);
      const now = fs.readFileSync(file, 'utf8');
      const same = now === last;
      last = now;
      return same;
    }).catch(() => {});
  };
  const gotoLine = async (n) => {
    await page.keyboard.press('Control+g');
    await page.locator('.quick-input-widget input').waitFor();
    await page.keyboard.type(String(n));
    await page.keyboard.press('Enter');
  };

  const suggestVisible = async () => page.locator('.suggest-widget.visible').isVisible().catch(() => false);
  const suggestRows = async () => (await page.locator('.suggest-widget.visible .monaco-list-row').allInnerTexts()).slice(0, 5).map((r) => r.replace(/\s+/g, ' ').trim());
  const toasts = async () => (await page.locator('.notification-toast').allInnerTexts()).map((t) => t.replace(/\s+/g, ' ').trim());
  const panelVisible = async () => page.locator('.part.panel').isVisible().catch(() => false);
  // The Diffill status bar item: its text, tooltip and colour.
  const statusItem = async () => {
    const item = page.locator('.statusbar-item', { hasText: 'diffill' }).first();
    if (!(await item.count())) return undefined;
    return item.evaluate((el) => {
      let bg = getComputedStyle(el).backgroundColor;
      for (const c of el.querySelectorAll('*')) {
        const b = getComputedStyle(c).backgroundColor;
        if (bg === 'rgba(0, 0, 0, 0)' && b !== 'rgba(0, 0, 0, 0)') bg = b;
      }
      const a = el.querySelector('a');
      return { text: el.innerText.trim(), tooltip: (a && (a.getAttribute('aria-label') || a.title)) || el.getAttribute('aria-label') || '', bg };
    });
  };
  // Whether a CSS colour is red (the status bar's error background), not grey, blue or yellow.
  const isRed = (css) => {
    const m = /rgba?\((\d+), (\d+), (\d+)/.exec(css || '');
    return !!m && Number(m[1]) > 120 && Number(m[1]) > 2 * Number(m[2]) && Number(m[1]) > 2 * Number(m[3]);
  };
  const openFile = async () => {
    // Open the Go file with Quick Open.
    await page.keyboard.press('Control+p');
    await page.locator('.quick-input-widget input').waitFor();
    await page.keyboard.type(path.basename(file), { delay: 30 });
    await page.locator('.quick-input-list .monaco-list-row', { hasText: path.basename(file) }).first().waitFor();
    await page.keyboard.press('Enter');
    await page.locator('.editor-instance .view-lines').first().waitFor();
    step('opened', path.basename(file));
  };
  const E = { page, shot, editorText, statusText, statusItem, isRed, errorToasts, toasts, palette, save, gotoLine, suggestVisible, suggestRows, panelVisible, openFile };

  try {
    await page.goto(url);
    await page.waitForSelector('.monaco-workbench', { timeout: 60000 });
    step('workbench loaded');
    const run = { main: scenarioMain, 'bad-model': scenarioBadModel, 'not-found': scenarioNotFound, edits: scenarioEdits }[scenario];
    if (!run) throw new Error(`unknown scenario ${scenario}`);
    await run(E);
    process.stdout.write(JSON.stringify({ ok: true, steps }) + '\n');
  } catch (err) {
    try {
      await shot('failure.png');
    } catch {}
    process.stdout.write(JSON.stringify({ ok: false, error: String(err && err.stack ? err.stack : err), steps }) + '\n');
    process.exitCode = 1;
  } finally {
    await ctx.close();
    fs.rmSync(profile, { recursive: true, force: true });
  }
}

main();
