// End-to-end check of the Diffill extension in a real VS Code (code-server)
// driven through Debian's Chromium, against the real `diffill serve`.
// vscode_test.go starts code-server with the .vsix installed and runs this:
//   DIFFILL_E2E_URL=http://127.0.0.1:PORT/?folder=WS DIFFILL_E2E_FILE=WS/a.go DIFFILL_E2E_SHOTS=DIR node e2e.js
// It prints one JSON line {ok, steps: [...], error?} and exits non-zero on failure.
'use strict';

const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { chromium } = require('playwright-core');

const url = mustEnv('DIFFILL_E2E_URL');
const file = mustEnv('DIFFILL_E2E_FILE');
const shots = mustEnv('DIFFILL_E2E_SHOTS');
const SLOW = Number(process.env.DIFFILL_E2E_TIMEOUT_MS || 120000);
const chromiumPath = process.env.DIFFILL_E2E_CHROMIUM || '/usr/bin/chromium';
const userData = mustEnv('DIFFILL_E2E_USER_DATA');
const HOLE = '/*?*/';

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
  };
  const gotoLine = async (n) => {
    await page.keyboard.press('Control+g');
    await page.locator('.quick-input-widget input').waitFor();
    await page.keyboard.type(String(n));
    await page.keyboard.press('Enter');
  };

  try {
    await page.goto(url);
    await page.waitForSelector('.monaco-workbench', { timeout: 60000 });
    step('workbench loaded');

    // Open the Go file with Quick Open.
    await page.keyboard.press('Control+p');
    await page.locator('.quick-input-widget input').waitFor();
    await page.keyboard.type(path.basename(file), { delay: 30 });
    await page.locator('.quick-input-list .monaco-list-row', { hasText: path.basename(file) }).first().waitFor();
    await page.keyboard.press('Enter');
    await page.locator('.editor-instance .view-lines').first().waitFor();
    step('opened', path.basename(file));

    // The status bar item appears when the extension starts the server; idle once initialize is answered.
    const idle = await waitFor('the Diffill status bar item to say the server is up', SLOW, async () => {
      const s = await statusText();
      return /diffill \S+ · cpu/.test(s) && s;
    });
    step('status bar', idle);

    // Ghost text: a new line under GHOST_HERE, type the start of a statement.
    await gotoLine(lineOf('GHOST_HERE'));
    await page.keyboard.press('End');
    await page.keyboard.press('Enter');
    await page.keyboard.type('return ', { delay: 60 });
    const ghost = page.locator('.ghost-text-decoration, .ghost-text').first();
    const deadline = Date.now() + SLOW;
    while (!(await ghost.isVisible())) {
      if (Date.now() > deadline) throw new Error('no ghost text within the time limit');
      await page.waitForTimeout(700);
      if (await ghost.isVisible()) break;
      // Keys typed before the extension activated, or answered while the model loaded, bring nothing: type on.
      await page.keyboard.press('Backspace');
      await page.keyboard.type(' ');
    }
    const ghostText = (await page.locator('.ghost-text-decoration, .ghost-text').allInnerTexts()).join('').replace(/\u00a0/g, ' ');
    step('ghost text shown', ghostText);
    await shot('1-ghost-text.png');

    await page.keyboard.press('Tab');
    await waitFor('the ghost text to be accepted', 10000, async () => !(await ghost.isVisible()));
    await save();
    const saved = await waitFor('the accepted text on disk', 10000, async () => {
      const lines = fs.readFileSync(file, 'utf8').split('\n');
      const l = lines[lineOf('GHOST_HERE')];
      return l && l.trim().startsWith('return') && l.trim() !== 'return' && l;
    });
    step('accepted with Tab; line on disk', saved);
    await shot('2-accepted.png');

    // Completion items: Ctrl+Space on a new line (word-based suggestions are off, so every row is diffill's).
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
