// Mapping from the extension's "diffill.*" settings to the settings object the
// language server reads (initializationOptions, workspace/didChangeConfiguration
// and workspace/configuration section "diffill"). No vscode import: unit-tested
// under plain Node.

/** The settings the server reads, by their names on the wire. */
export const SERVER_KEYS = [
  'model',
  'device',
  'steps',
  'sampler',
  'temperature',
  'maxTokens',
  'contextTokens',
  'holeMarker',
  'debounce',
] as const;

export type ServerKey = (typeof SERVER_KEYS)[number];

/**
 * The server's settings object. Every key is present: null when the user left
 * it unset. The server merges what it receives onto its current settings and
 * resets a key to its default on null, so null (not a missing key) is what
 * takes a setting back to the default after the user clears it.
 */
export type ServerSettings = Record<ServerKey, string | number | null>;

export const SAMPLERS = ['confidence', 'margin', 'entropy', 'random'] as const;
export const DEVICES = ['cpu', 'cuda'] as const;

interface NumberRule {
  integer: boolean;
  min: number;
  max: number;
}

const NUMBER_RULES: Partial<Record<ServerKey, NumberRule>> = {
  // The server's ranges (lsp/settings); 0 means "default" there too.
  steps: { integer: true, min: 0, max: 4096 },
  temperature: { integer: false, min: 0, max: 10 },
  maxTokens: { integer: true, min: 0, max: 4096 },
  contextTokens: { integer: true, min: 0, max: 65536 },
  debounce: { integer: true, min: 0, max: 5000 },
};

/** Values that mean "the server's default" in the settings UI (0 and "" are the UI's defaults). */
function isUnset(key: ServerKey, v: unknown): boolean {
  if (v === undefined || v === null || v === '') return true;
  // 0 steps/tokens/debounce has no meaning of its own: it is the UI's way to say "default".
  // A temperature of 0 is a real value (greedy), so it is sent.
  return v === 0 && key !== 'temperature';
}

export interface PathContext {
  home: string;
  workspaceFolder?: string;
}

/** Expands a leading "~" and "${workspaceFolder}" the way users expect in a path setting. */
export function expandPath(p: string, ctx: PathContext): string {
  let out = p.trim();
  if (out === '~' || out.startsWith('~/') || out.startsWith('~\\')) out = ctx.home + out.slice(1);
  if (ctx.workspaceFolder !== undefined) out = out.split('${workspaceFolder}').join(ctx.workspaceFolder);
  return out;
}

export interface MappedSettings {
  settings: ServerSettings;
  /** One line per setting that was ignored, for the log and a warning. */
  problems: string[];
}

/**
 * Reads the server settings through get ("diffill.<key>" without the prefix)
 * and turns them into the object the server receives: unset values left
 * out, numbers range-checked, enums checked, the model path expanded.
 */
export function mapServerSettings(get: (key: string) => unknown, ctx: PathContext): MappedSettings {
  const settings = Object.fromEntries(SERVER_KEYS.map((k) => [k, null])) as ServerSettings;
  const problems: string[] = [];
  for (const key of SERVER_KEYS) {
    const raw = get(key);
    if (isUnset(key, raw)) continue;
    const rule = NUMBER_RULES[key];
    if (rule) {
      const n = typeof raw === 'number' ? raw : typeof raw === 'string' ? Number(raw) : NaN;
      if (!Number.isFinite(n) || n < rule.min || n > rule.max) {
        problems.push(`diffill.${key}: ${JSON.stringify(raw)} is not a number in [${rule.min}, ${rule.max}]; using the server's default`);
        continue;
      }
      settings[key] = rule.integer ? Math.round(n) : n;
      continue;
    }
    if (typeof raw !== 'string') {
      problems.push(`diffill.${key}: ${JSON.stringify(raw)} is not a string; using the server's default`);
      continue;
    }
    if (key === 'sampler' && !(SAMPLERS as readonly string[]).includes(raw)) {
      problems.push(`diffill.sampler: "${raw}" is not one of ${SAMPLERS.join(', ')}; using the server's default`);
      continue;
    }
    if (key === 'device' && !(DEVICES as readonly string[]).includes(raw)) {
      problems.push(`diffill.device: "${raw}" is not one of ${DEVICES.join(', ')}; using the server's default`);
      continue;
    }
    settings[key] = key === 'model' ? expandPath(raw, ctx) : raw;
  }
  return { settings, problems };
}

/** Settings whose change needs a new server process rather than a didChangeConfiguration. */
export const RESTART_KEYS = ['path', 'languages'] as const;

/** Which kind of reaction a configuration change needs. */
export function changeKind(affects: (section: string) => boolean): 'restart' | 'notify' | 'none' {
  if (RESTART_KEYS.some((k) => affects(`diffill.${k}`))) return 'restart';
  if (SERVER_KEYS.some((k) => affects(`diffill.${k}`))) return 'notify';
  return 'none';
}

/** A short name for the model, for the status bar. */
export function modelLabel(s: Partial<ServerSettings>): string {
  const m = typeof s?.model === 'string' ? s.model : '';
  if (m === '' || m === 'builtin' || m === 'built-in') return 'built-in';
  const parts = m.replace(/[\\/]+$/, '').split(/[\\/]/);
  return parts[parts.length - 1] || m;
}

/** The document selector for the languages setting ("*" serves every file). */
export function documentSelector(languages: unknown): { scheme: string; language?: string }[] {
  const langs = Array.isArray(languages) ? languages.filter((l): l is string => typeof l === 'string' && l !== '') : [];
  const schemes = ['file', 'untitled'];
  if (langs.length === 0 || langs.includes('*')) return schemes.map((scheme) => ({ scheme }));
  return langs.flatMap((language) => schemes.map((scheme) => ({ scheme, language })));
}

/** Whether a document with this language id and scheme is served. */
export function isServed(languages: unknown, languageId: string, scheme: string): boolean {
  return documentSelector(languages).some((f) => f.scheme === scheme && (f.language === undefined || f.language === languageId));
}
