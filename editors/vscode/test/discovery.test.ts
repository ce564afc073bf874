import assert from 'node:assert/strict';
import { test } from 'node:test';
import { findDiffill, goInstallDir, pathFromEnviron, serverPath, type DiscoveryEnv } from '../src/discovery';

function env(files: string[], over: Partial<DiscoveryEnv> = {}): DiscoveryEnv {
  const set = new Set(files);
  return {
    configured: '',
    env: { PATH: '/usr/local/bin:/usr/bin' },
    platform: 'linux',
    home: '/home/u',
    workspaceFolder: '/ws',
    isExecutable: (p) => set.has(p),
    ...over,
  };
}

test('PATH is searched in order', () => {
  const d = findDiffill(env(['/usr/bin/diffill', '/usr/local/bin/diffill']));
  assert.deepEqual(d, { ok: true, path: '/usr/local/bin/diffill', source: 'PATH' });
});

test('the setting wins over PATH, with ~ and ${workspaceFolder} expanded', () => {
  assert.deepEqual(findDiffill(env(['/usr/bin/diffill', '/home/u/bin/diffill'], { configured: '~/bin/diffill' })), {
    ok: true,
    path: '/home/u/bin/diffill',
    source: 'setting',
  });
  assert.deepEqual(findDiffill(env(['/ws/bin/diffill'], { configured: '${workspaceFolder}/bin/diffill' })), {
    ok: true,
    path: '/ws/bin/diffill',
    source: 'setting',
  });
  assert.deepEqual(findDiffill(env(['/ws/bin/diffill'], { configured: 'bin/diffill' })), {
    ok: true,
    path: '/ws/bin/diffill',
    source: 'setting',
  });
});

test('a bare name in the setting is looked up on PATH', () => {
  assert.deepEqual(findDiffill(env(['/usr/bin/diffill-dev'], { configured: 'diffill-dev' })), {
    ok: true,
    path: '/usr/bin/diffill-dev',
    source: 'setting',
  });
});

test('a wrong setting is an error even when PATH has one: the user asked for that binary', () => {
  const d = findDiffill(env(['/usr/bin/diffill'], { configured: '/nope/diffill' }));
  assert.equal(d.ok, false);
  if (!d.ok) {
    assert.match(d.message, /\/nope\/diffill/);
    assert.match(d.fix, /diffill\.path/);
  }
});

test('go install locations are the fallback', () => {
  assert.deepEqual(findDiffill(env(['/home/u/go/bin/diffill'])), { ok: true, path: '/home/u/go/bin/diffill', source: 'go install' });
  assert.deepEqual(findDiffill(env(['/gp/bin/diffill'], { env: { PATH: '/usr/bin', GOPATH: '/gp:/other' } })), {
    ok: true,
    path: '/gp/bin/diffill',
    source: 'go install',
  });
  assert.equal(goInstallDir({ GOBIN: '/gobin', GOPATH: '/gp' }, 'linux', '/h'), '/gobin');
});

test('not found: the message says where it looked and the fix says how to install', () => {
  const d = findDiffill(env([]));
  assert.equal(d.ok, false);
  if (!d.ok) {
    assert.match(d.message, /PATH/);
    assert.match(d.message, /\/home\/u\/go\/bin/);
    // The module is not published: the proxy refuses `go install ...@latest`, so the fix builds from a clone.
    assert.doesNotMatch(d.fix, /@latest/);
    assert.match(d.fix, /clone of the diffill repository, run "go install \.\/cmd\/diffill"/);
    assert.match(d.fix, /diffill\.path/);
  }
});

test('relative and empty PATH entries are not searched', () => {
  assert.equal(findDiffill(env(['bin/diffill', 'diffill'], { env: { PATH: ':bin:.' } })).ok, false);
});

test('Windows: PATHEXT names and ; separators', () => {
  const d = findDiffill(
    env(['C:\\tools\\diffill.exe'], { platform: 'win32', home: 'C:\\Users\\u', env: { Path: 'C:\\Windows;C:\\tools', PATHEXT: '.COM;.EXE' } }),
  );
  assert.deepEqual(d, { ok: true, path: 'C:\\tools\\diffill.exe', source: 'PATH' });
});

test("the PATH the editor was started with is searched after the extension host's", () => {
  // code-server: the extension host's PATH is the login shell's; the editor's own PATH had ~/tools in front.
  const over = { env: { PATH: '/usr/local/bin:/usr/bin' }, editorPath: '/home/u/tools:/usr/local/bin:/usr/bin' };
  assert.deepEqual(findDiffill(env(['/home/u/tools/diffill'], over)), { ok: true, path: '/home/u/tools/diffill', source: "the editor's PATH" });
  // The extension host's PATH first.
  assert.deepEqual(findDiffill(env(['/home/u/tools/diffill', '/usr/bin/diffill'], over)), { ok: true, path: '/usr/bin/diffill', source: 'PATH' });
  // Before the go install fallback, and with the same rules (no relative entries).
  assert.deepEqual(findDiffill(env(['/home/u/tools/diffill', '/home/u/go/bin/diffill'], over)), {
    ok: true,
    path: '/home/u/tools/diffill',
    source: "the editor's PATH",
  });
  assert.equal(findDiffill(env(['tools/diffill'], { editorPath: 'tools' })).ok, false);
});

test('the server gets the editor PATH directories the extension host lacks, after its own', () => {
  assert.equal(serverPath({ env: { PATH: '/a:/b' }, editorPath: '/t:/a:/b', platform: 'linux' }), '/a:/b:/t');
  assert.equal(serverPath({ env: { PATH: '/a:/b' }, editorPath: '/a', platform: 'linux' }), '/a:/b');
  assert.equal(serverPath({ env: { PATH: '/a' }, editorPath: undefined, platform: 'linux' }), '/a');
  assert.equal(serverPath({ env: {}, editorPath: '/t', platform: 'linux' }), '/t');
});

test('PATH from a /proc/PID/environ block', () => {
  assert.equal(pathFromEnviron('HOME=/root\0PATH=/x/bin:/usr/bin\0XPATH=no\0'), '/x/bin:/usr/bin');
  assert.equal(pathFromEnviron('HOME=/root\0'), undefined);
});
