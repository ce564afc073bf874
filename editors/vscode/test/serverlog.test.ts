import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseServerLog } from '../src/serverlog';

test('zap JSON lines keep their level and fields', () => {
  assert.deepEqual(parseServerLog('{"level":"info","ts":1.5,"msg":"initialize","client":"Visual Studio Code 1.100.3"}'), {
    level: 'info',
    text: 'initialize {"client":"Visual Studio Code 1.100.3"}',
  });
  assert.deepEqual(parseServerLog('{"level":"warn","msg":"settings: steps: want an integer"}'), { level: 'warn', text: 'settings: steps: want an integer' });
  assert.equal(parseServerLog('{"level":"fatal","msg":"x"}').level, 'error');
});

test('zap console lines keep their level', () => {
  assert.deepEqual(parseServerLog('2026-11-26T17:09:01.152Z\tINFO\tmodel loaded\t{"ms": 420}'), { level: 'info', text: 'model loaded\t{"ms": 420}' });
  assert.equal(parseServerLog('2026-11-26T17:09:01.152Z\tERROR\tload failed').level, 'error');
  assert.equal(parseServerLog('DEBUG\tcancelled 3').level, 'debug');
});

test('other lines are info, a Go panic is an error', () => {
  assert.deepEqual(parseServerLog('listening on stdio'), { level: 'info', text: 'listening on stdio' });
  assert.equal(parseServerLog('panic: runtime error: index out of range').level, 'error');
  assert.equal(parseServerLog('goroutine 7 [running]:').level, 'error');
  assert.equal(parseServerLog('{not json').level, 'info');
});
