// The server logs with zap to stderr. vscode-languageclient would write every
// stderr line to the output channel as an error; this reads the level zap
// wrote (JSON or console encoding) so that info stays info. No vscode import.

export type Level = 'trace' | 'debug' | 'info' | 'warn' | 'error';

const NAMES: Record<string, Level> = {
  debug: 'debug',
  info: 'info',
  warn: 'warn',
  warning: 'warn',
  error: 'error',
  dpanic: 'error',
  panic: 'error',
  fatal: 'error',
};

/** The level of one stderr line, and the line without the timestamp/level prefix that the output channel adds itself. */
export function parseServerLog(line: string): { level: Level; text: string } {
  const trimmed = line.trim();
  if (trimmed.startsWith('{')) {
    try {
      const o = JSON.parse(trimmed) as Record<string, unknown>;
      const lvl = typeof o.level === 'string' ? NAMES[o.level.toLowerCase()] : undefined;
      if (lvl) {
        const { level: _l, ts: _t, time: _tm, msg, ...rest } = o;
        const extra = Object.keys(rest).length ? ' ' + JSON.stringify(rest) : '';
        return { level: lvl, text: `${typeof msg === 'string' ? msg : ''}${extra}` };
      }
    } catch {
      // not JSON after all: fall through
    }
  }
  // zap's console encoder: "<time>\t<LEVEL>\t<msg>\t<fields>" (the time may be missing).
  const fields = line.split('\t');
  for (let i = 0; i < Math.min(fields.length, 2); i++) {
    const lvl = NAMES[fields[i].trim().toLowerCase()];
    if (lvl) return { level: lvl, text: fields.slice(i + 1).join('\t') };
  }
  // A Go panic or a message printed before the logger existed: worth seeing.
  if (/^(panic:|fatal error:|goroutine \d+ \[)/.test(trimmed)) return { level: 'error', text: line };
  return { level: 'info', text: line };
}
