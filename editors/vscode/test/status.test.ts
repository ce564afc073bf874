import assert from 'node:assert/strict';
import { test } from 'node:test';
import { applyModelStatus, initialStatus, oneLine, parseModelStatus, parseStep, render, stepMessage } from '../src/status';

test('idle, busy with steps, failed, and a warning', () => {
  const s = { ...initialStatus('built-in', 'cpu'), server: 'running' as const };
  assert.equal(render(s).text, '$(sparkle) diffill built-in · cpu');
  assert.match(render(s).tooltip, /idle/);
  const busy = render({ ...s, busy: 1, step: { done: 3, total: 16 } });
  assert.equal(busy.text, '$(loading~spin) diffill built-in · cpu 3/16');
  assert.match(busy.tooltip, /step 3 of 16/);
  const failed = render({ ...s, server: 'failed', error: 'binary not found' });
  assert.equal(failed.severity, 'error');
  assert.match(failed.tooltip, /binary not found/);
  const warn = render({ ...s, error: 'model failed to load' });
  assert.equal(warn.severity, 'warning');
  assert.ok(warn.text.startsWith('$(warning)'));
  assert.match(render(s).tooltip, /Click to show the log/);
});

test('parseStep reads the server\'s diffill/step and the issue\'s shape', () => {
  const range = { start: { line: 3, character: 1 }, end: { line: 3, character: 9 } };
  assert.deepEqual(
    parseStep({ textDocument: { uri: 'file:///a.go', version: 4 }, command: 'diffill.rewriteRange', done: 2, total: 8, spans: [{ range, text: 'return x' }] }),
    { uri: 'file:///a.go', step: 2, total: 8, text: 'return x', spans: [{ range, text: 'return x' }] },
  );
  const two = parseStep({ textDocument: { uri: 'u' }, done: 1, total: 4, spans: [{ range, text: 'a' }, { range, text: 'b' }, { range: {}, text: 'bad' }] });
  assert.equal(two?.text, 'a … b');
  assert.equal(two?.spans.length, 2);
  assert.deepEqual(parseStep({ uri: 'file:///a.go', text: 'x', step: 1, total: 8 }), { uri: 'file:///a.go', step: 1, total: 8, text: 'x', spans: [] });
  assert.equal(parseStep({ uri: 'file:///a.go', text: 3, step: 1, total: 8 }), undefined);
  assert.equal(parseStep({ step: 1, total: 8 }), undefined);
  assert.equal(parseStep(null), undefined);
});

test('oneLine flattens newlines and indentation and cuts the middle', () => {
  assert.equal(oneLine('if x {\n\treturn 1\n}'), 'if x { ⏎ return 1 ⏎ }');
  const long = oneLine('a'.repeat(50) + 'b'.repeat(50), 21);
  assert.equal(long, 'a'.repeat(10) + '…' + 'b'.repeat(10));
});

test('stepMessage moves the bar by the steps since the last report', () => {
  assert.deepEqual(stepMessage({ step: 4, total: 16, text: 'return x' }, 2), { message: 'step 4/16: return x', increment: 12.5 });
  assert.deepEqual(stepMessage({ step: 1, total: 0 }, 0), { message: 'step 1/0', increment: 100 });
});

test('a model that cannot load: red with the server\'s message until a load succeeds', () => {
  const s = { ...initialStatus('nope', 'cpu'), server: 'running' as const };
  const msg = 'diffill could not load the model in "/nope": no config.json. Check that diffill.model names a checkpoint directory';
  const m = parseModelStatus({ state: 'failed', model: '/nope', message: msg });
  assert.deepEqual(m, { state: 'failed', model: '/nope', message: msg });
  const failed = { ...s, ...applyModelStatus(m!) };
  const r = render(failed);
  assert.equal(r.severity, 'error');
  assert.ok(r.text.startsWith('$(error) diffill nope'), r.text);
  assert.match(r.tooltip, /could not load/);
  assert.ok(r.tooltip.includes(msg));
  // Requests that succeed meanwhile (they answer empty) and their errors do not take the red away.
  assert.equal(render({ ...failed, busy: 1 }).severity, 'error');
  assert.equal(render({ ...failed, error: 'other' }).severity, 'error');
  assert.equal(render({ ...failed, error: undefined }).severity, 'error');
  // Loading, then ready.
  const loading = { ...failed, ...applyModelStatus(parseModelStatus({ state: 'loading', model: 'x' })!) };
  assert.equal(render(loading).severity, 'normal');
  assert.match(render(loading).tooltip, /loading the model/);
  const ready = { ...loading, ...applyModelStatus(parseModelStatus({ state: 'ready', model: 'x', message: 'loaded in 2s' })!) };
  assert.equal(render(ready).text, '$(sparkle) diffill nope · cpu');
  assert.equal(parseModelStatus({ state: 'odd', model: 'x' }), undefined);
  assert.equal(parseModelStatus({ state: 'failed', model: 3 }), undefined);
  assert.equal(parseModelStatus('failed'), undefined);
});
