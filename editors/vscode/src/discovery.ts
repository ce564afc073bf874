// Finding the diffill binary: the diffill.path setting, else PATH, else where
// `go install` puts binaries (VS Code started from a desktop launcher often
// lacks ~/go/bin on PATH). No vscode import: unit-tested under plain Node.

import * as path from 'node:path';
import { expandPath } from './settings';

export interface DiscoveryEnv {
  /** The diffill.path setting, as the user wrote it. */
  configured: string;
  /** process.env, or what a test wants it to be. */
  env: Record<string, string | undefined>;
  platform: string;
  home: string;
  workspaceFolder?: string;
  /** Whether p is a file this process can execute. */
  isExecutable(p: string): boolean;
}

export type Discovery =
  | { ok: true; path: string; source: 'setting' | 'PATH' | 'go install' }
  | { ok: false; message: string; fix: string };

export const INSTALL_COMMAND = 'go install github.com/diffill/diffill/cmd/diffill@latest';

function exeNames(platform: string, env: Record<string, string | undefined>): string[] {
  if (platform !== 'win32') return ['diffill'];
  const exts = (env.PATHEXT ?? '.EXE;.CMD;.BAT').split(';').filter(Boolean);
  return exts.map((e) => 'diffill' + e.toLowerCase());
}

function pathModule(platform: string): typeof path.posix {
  return platform === 'win32' ? path.win32 : path.posix;
}

/** The directory `go install` writes to: $GOBIN, else the first $GOPATH entry's bin, else ~/go/bin. */
export function goInstallDir(env: Record<string, string | undefined>, platform: string, home: string): string {
  const p = pathModule(platform);
  if (env.GOBIN) return env.GOBIN;
  const sep = platform === 'win32' ? ';' : ':';
  const gopath = (env.GOPATH ?? '').split(sep).filter(Boolean)[0];
  return p.join(gopath ?? p.join(home, 'go'), 'bin');
}

export function findDiffill(d: DiscoveryEnv): Discovery {
  const p = pathModule(d.platform);
  const configured = d.configured.trim();
  if (configured !== '') {
    let full = expandPath(configured, { home: d.home, workspaceFolder: d.workspaceFolder });
    if (!p.isAbsolute(full) && d.workspaceFolder !== undefined && full.includes(p.sep)) full = p.join(d.workspaceFolder, full);
    // A bare name ("diffill-dev") is looked up on PATH like a shell would.
    const candidates = full.includes(p.sep) || p.isAbsolute(full) ? [full] : searchPath(full, d);
    for (const c of candidates) if (d.isExecutable(c)) return { ok: true, path: c, source: 'setting' };
    return {
      ok: false,
      message: `diffill.path is "${configured}", but no executable diffill is there.`,
      fix: `Point the diffill.path setting at the diffill binary, or clear it to use the one on PATH (install: ${INSTALL_COMMAND}).`,
    };
  }
  for (const name of exeNames(d.platform, d.env)) {
    for (const c of searchPath(name, d)) if (d.isExecutable(c)) return { ok: true, path: c, source: 'PATH' };
  }
  const goBin = goInstallDir(d.env, d.platform, d.home);
  for (const name of exeNames(d.platform, d.env)) {
    const c = p.join(goBin, name);
    if (d.isExecutable(c)) return { ok: true, path: c, source: 'go install' };
  }
  return {
    ok: false,
    message: `The diffill language server was not found on PATH or in ${goBin}.`,
    fix: `Install it with "${INSTALL_COMMAND}" (or build it: go build -o diffill ./cmd/diffill), then set diffill.path to the binary if it is not on PATH.`,
  };
}

function searchPath(name: string, d: DiscoveryEnv): string[] {
  const p = pathModule(d.platform);
  const sep = d.platform === 'win32' ? ';' : ':';
  const raw = d.env.PATH ?? d.env.Path ?? '';
  // An empty PATH entry means the current directory in POSIX shells; a language server should not run from there.
  return raw
    .split(sep)
    .filter((dir) => dir !== '' && p.isAbsolute(dir))
    .map((dir) => p.join(dir, name));
}
