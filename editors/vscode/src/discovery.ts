// Finding the diffill binary: the diffill.path setting, else PATH, else the
// PATH the editor was started with, else where `go install` puts binaries
// (VS Code started from a desktop launcher often lacks ~/go/bin on PATH).
// No vscode import: unit-tested under plain Node.
//
// Why two PATHs: VS Code's server (code-server, Remote) starts the extension
// host with the environment of a login shell (`$SHELL -ilc env`) laid over
// its own, so the extension host's PATH is whatever the shell profile sets
// (Debian's /etc/profile resets it), not the PATH the editor was started
// with. `PATH=~/tools:$PATH code-server` would otherwise never find
// ~/tools/diffill.

import * as path from 'node:path';
import { expandPath } from './settings';

export interface DiscoveryEnv {
  /** The diffill.path setting, as the user wrote it. */
  configured: string;
  /** process.env, or what a test wants it to be. */
  env: Record<string, string | undefined>;
  /** The PATH of the editor process that started the extension host, where it can be read (see editorPath). */
  editorPath?: string;
  platform: string;
  home: string;
  workspaceFolder?: string;
  /** Whether p is a file this process can execute. */
  isExecutable(p: string): boolean;
}

export type Discovery =
  | { ok: true; path: string; source: 'setting' | 'PATH' | "the editor's PATH" | 'go install' }
  | { ok: false; message: string; fix: string };

/**
 * How to build and install diffill. The module is not published, so
 * `go install github.com/diffill/diffill/cmd/diffill@latest` is refused by the
 * module proxy; it is built from a clone of the repository.
 */
export const INSTALL_COMMAND = 'go install ./cmd/diffill';
export const INSTALL_HOW = `in a clone of the diffill repository, run "${INSTALL_COMMAND}"`;

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
      fix: `Point the diffill.path setting at the diffill binary, or clear it to use the one on PATH (to install it: ${INSTALL_HOW}).`,
    };
  }
  for (const name of exeNames(d.platform, d.env)) {
    for (const c of searchPath(name, d)) if (d.isExecutable(c)) return { ok: true, path: c, source: 'PATH' };
  }
  for (const name of exeNames(d.platform, d.env)) {
    for (const c of searchDirs(name, editorOnly(d), d.platform)) if (d.isExecutable(c)) return { ok: true, path: c, source: "the editor's PATH" };
  }
  const goBin = goInstallDir(d.env, d.platform, d.home);
  for (const name of exeNames(d.platform, d.env)) {
    const c = p.join(goBin, name);
    if (d.isExecutable(c)) return { ok: true, path: c, source: 'go install' };
  }
  return {
    ok: false,
    message: `The diffill language server was not found on PATH or in ${goBin}.`,
    fix: `To install it, ${INSTALL_HOW} (it goes to ${goBin}); or set diffill.path to a diffill binary.`,
  };
}

function pathSep(platform: string): string {
  return platform === 'win32' ? ';' : ':';
}

/** The absolute directories of a PATH value. An empty entry means the current directory in POSIX shells; a language server should not run from there. */
function pathDirs(raw: string | undefined, platform: string): string[] {
  const p = pathModule(platform);
  return (raw ?? '').split(pathSep(platform)).filter((dir) => dir !== '' && p.isAbsolute(dir));
}

function searchDirs(name: string, dirs: string[], platform: string): string[] {
  const p = pathModule(platform);
  return dirs.map((dir) => p.join(dir, name));
}

function searchPath(name: string, d: DiscoveryEnv): string[] {
  return searchDirs(name, pathDirs(d.env.PATH ?? d.env.Path, d.platform), d.platform);
}

/** The directories of the editor's PATH that the extension host's PATH lacks. */
function editorOnly(d: DiscoveryEnv): string[] {
  const have = new Set(pathDirs(d.env.PATH ?? d.env.Path, d.platform));
  return pathDirs(d.editorPath, d.platform).filter((dir) => !have.has(dir));
}

/**
 * The PATH for the server process: the extension host's, then the editor's
 * directories it lacks, so that what diffill runs (go) is found where the
 * user's editor would find it.
 */
export function serverPath(d: Pick<DiscoveryEnv, 'env' | 'editorPath' | 'platform'>): string | undefined {
  const own = d.env.PATH ?? d.env.Path;
  const extra = editorOnly({ ...d, configured: '', home: '', isExecutable: () => false });
  if (extra.length === 0) return own;
  return [...(own ? [own] : []), ...extra].join(pathSep(d.platform));
}

/**
 * Reads the PATH from an environment block as Linux's /proc/PID/environ
 * holds it (NUL-separated NAME=value entries).
 */
export function pathFromEnviron(environ: string): string | undefined {
  for (const entry of environ.split('\0')) if (entry.startsWith('PATH=')) return entry.slice(5);
  return undefined;
}
