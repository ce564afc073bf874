import assert from 'node:assert/strict';
import { test } from 'node:test';
import { buildCommand, normalize, type Range, resultProblem } from '../src/commands';

const r = (l1: number, c1: number, l2: number, c2: number): Range => ({ start: { line: l1, character: c1 }, end: { line: l2, character: c2 } });
const base = { uri: 'file:///ws/a.go', version: 7, lineLength: 12 };

test('infill sends the selection with uri and version', () => {
  assert.deepEqual(buildCommand('infill', { ...base, selection: r(2, 1, 4, 0) }), {
    ok: true,
    command: 'diffill.infillRange',
    arguments: [{ textDocument: { uri: 'file:///ws/a.go', version: 7 }, range: r(2, 1, 4, 0) }],
    range: r(2, 1, 4, 0),
  });
});

test('infill with no selection is a point at the cursor', () => {
  const b = buildCommand('infill', { ...base, selection: r(3, 5, 3, 5) });
  assert.ok(b.ok);
  if (b.ok) assert.deepEqual(b.arguments[0].range, r(3, 5, 3, 5));
});

test('a selection made upwards is sent start-first', () => {
  assert.deepEqual(normalize(r(5, 2, 1, 0)), r(1, 0, 5, 2));
  assert.deepEqual(normalize(r(1, 9, 1, 3)), r(1, 3, 1, 9));
  const b = buildCommand('rewrite', { ...base, selection: r(5, 2, 1, 0) });
  assert.ok(b.ok);
  if (b.ok) assert.deepEqual(b.arguments[0].range, r(1, 0, 5, 2));
});

test('rewrite with no selection rewrites the cursor line; an empty line is refused', () => {
  const b = buildCommand('rewrite', { ...base, selection: r(3, 5, 3, 5) });
  assert.ok(b.ok);
  if (b.ok) {
    assert.equal(b.command, 'diffill.rewriteRange');
    assert.deepEqual(b.arguments[0].range, r(3, 0, 3, 12));
  }
  const e = buildCommand('rewrite', { ...base, lineLength: 0, selection: r(3, 0, 3, 0) });
  assert.equal(e.ok, false);
});

test('rewrite strength is sent clamped, and only for rewrite', () => {
  const b = buildCommand('rewrite', { ...base, selection: r(0, 0, 1, 0), strength: 1.5 });
  assert.ok(b.ok);
  if (b.ok) assert.equal(b.arguments[0].strength, 1);
  const i = buildCommand('infill', { ...base, selection: r(0, 0, 1, 0), strength: 0.5 });
  assert.ok(i.ok);
  if (i.ok) assert.equal(i.arguments[0].strength, undefined);
  const z = buildCommand('rewrite', { ...base, selection: r(0, 0, 1, 0), strength: 0 });
  assert.ok(z.ok);
  if (z.ok) assert.ok(!('strength' in z.arguments[0]), 'strength 0 means the default and is not sent');
});

test('a result that was not applied is a problem with its reason', () => {
  assert.equal(resultProblem({ applied: true }), undefined);
  assert.equal(resultProblem(null), undefined);
  assert.equal(resultProblem({ applied: false, failureReason: 'document changed' }), 'the edit was not applied: document changed');
  assert.equal(resultProblem({ applied: false }), 'the edit was not applied');
});

test('fill holes sends the document only', () => {
  assert.deepEqual(buildCommand('fillHoles', { ...base, selection: r(3, 5, 3, 9) }), {
    ok: true,
    command: 'diffill.fillHoles',
    arguments: [{ textDocument: { uri: 'file:///ws/a.go', version: 7 } }],
  });
});
