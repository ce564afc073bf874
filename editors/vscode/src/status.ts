// What the status bar item says. Pure: the extension feeds it events and
// draws the result. No vscode import: unit-tested under plain Node.

export type ServerState = 'stopped' | 'starting' | 'running' | 'failed';

export interface Status {
  server: ServerState;
  model: string;
  device: string;
  /** Requests in flight (completions, inline completions, commands). */
  busy: number;
  /** Latest denoising step of a running command. */
  step?: { done: number; total: number };
  /** Latest error, until the next success or restart. */
  error?: string;
  /** Where the model stands, from the server's diffill/status. */
  modelState?: ModelState;
  /** Why the model could not load (the server's message): shown until the model or device setting changes, or a load succeeds. */
  modelError?: string;
  /** From the server's initialize result. */
  version?: string;
}

export type ModelState = 'loading' | 'ready' | 'failed';

/** A diffill/status notification: {state, model, message?} (lsp/engine.go). */
export interface ModelStatus {
  state: ModelState;
  model: string;
  message?: string;
}

export function parseModelStatus(v: unknown): ModelStatus | undefined {
  if (typeof v !== 'object' || v === null) return undefined;
  const o = v as Record<string, unknown>;
  if (o.state !== 'loading' && o.state !== 'ready' && o.state !== 'failed') return undefined;
  if (typeof o.model !== 'string' || (o.message !== undefined && typeof o.message !== 'string')) return undefined;
  return { state: o.state, model: o.model, message: o.message as string | undefined };
}

/** The status after a diffill/status notification. */
export function applyModelStatus(m: ModelStatus): Partial<Status> {
  if (m.state === 'failed') return { modelState: 'failed', modelError: m.message || `could not load ${m.model}` };
  return { modelState: m.state, modelError: undefined };
}

export interface Rendered {
  text: string;
  tooltip: string;
  severity: 'normal' | 'warning' | 'error';
}

export function initialStatus(model: string, device: string): Status {
  return { server: 'stopped', model, device, busy: 0 };
}

export function render(s: Status): Rendered {
  const where = `${s.model} · ${s.device || 'cpu'}`;
  let text: string;
  let state: string;
  let severity: Rendered['severity'] = 'normal';
  if (s.server === 'failed') {
    text = '$(error) diffill';
    state = 'not running';
    severity = 'error';
  } else if (s.server === 'starting') {
    text = `$(loading~spin) diffill ${where}`;
    state = 'starting';
  } else if (s.server === 'stopped') {
    text = '$(circle-slash) diffill';
    state = 'stopped';
  } else if (s.modelError !== undefined) {
    // Red until the setting changes: every request answers empty meanwhile, and only this says why.
    text = `$(error) diffill ${where}`;
    state = 'the model could not load';
    severity = 'error';
  } else if (s.modelState === 'loading') {
    text = `$(loading~spin) diffill ${where}`;
    state = 'loading the model';
  } else if (s.busy > 0) {
    const step = s.step && s.step.total > 0 ? ` ${s.step.done}/${s.step.total}` : '';
    text = `$(loading~spin) diffill ${where}${step}`;
    state = s.step ? `working: step ${s.step.done} of ${s.step.total}` : 'working';
  } else {
    text = `$(sparkle) diffill ${where}`;
    state = 'idle';
  }
  if (s.error !== undefined && s.server !== 'failed' && severity !== 'error') {
    text = text.replace(/^\$\([^)]*\)/, '$(warning)');
    severity = 'warning';
  }
  const lines = [`diffill${s.version ? ' ' + s.version : ''}: ${state}`, `model: ${s.model}`, `device: ${s.device || 'cpu'}`];
  if (s.modelError !== undefined) lines.push(s.modelError);
  if (s.error !== undefined && s.error !== s.modelError) lines.push(`error: ${s.error}`);
  lines.push('Click to show the log.');
  return { text, tooltip: lines.join('\n'), severity };
}

/** One span of a diffill/step notification: where it is and its text so far. */
export interface StepSpan {
  range: { start: { line: number; character: number }; end: { line: number; character: number } };
  text: string;
}

/** A diffill/step notification, normalised: which document, how far, and the forming text of each span. */
export interface StepParams {
  uri: string;
  step: number;
  total: number;
  /** The text of all spans, joined (for a progress message). */
  text?: string;
  spans: StepSpan[];
}

function isRange(v: unknown): boolean {
  const r = v as StepSpan['range'] | undefined;
  return typeof r?.start?.line === 'number' && typeof r?.start?.character === 'number' && typeof r?.end?.line === 'number' && typeof r?.end?.character === 'number';
}

/**
 * Reads diffill/step. The server (lsp/command.go) sends
 * {textDocument: {uri, version}, command, done, total, spans: [{range, text}]};
 * the shape in issue 5, {uri, text?, step, total}, is read too.
 */
export function parseStep(v: unknown): StepParams | undefined {
  if (typeof v !== 'object' || v === null) return undefined;
  const o = v as Record<string, unknown>;
  const td = o.textDocument as { uri?: unknown } | undefined;
  if (td && typeof td.uri === 'string' && typeof o.done === 'number' && typeof o.total === 'number') {
    const spans = Array.isArray(o.spans) ? o.spans.filter((s): s is StepSpan => isRange(s?.range) && typeof s?.text === 'string') : [];
    return { uri: td.uri, step: o.done, total: o.total, spans, text: spans.length ? spans.map((s) => s.text).join(' … ') : undefined };
  }
  if (typeof o.uri === 'string' && typeof o.step === 'number' && typeof o.total === 'number' && (o.text === undefined || typeof o.text === 'string')) {
    return { uri: o.uri, step: o.step, total: o.total, text: o.text as string | undefined, spans: [] };
  }
  return undefined;
}

/** One line of forming text for a decoration or a progress message: newlines shown as ⏎, long text cut in the middle. */
export function oneLine(text: string, max = 80): string {
  const flat = text.replace(/\r?\n[\t ]*/g, ' ⏎ ').replace(/\t/g, ' ');
  if (flat.length <= max) return flat;
  const half = Math.floor((max - 1) / 2);
  return flat.slice(0, half) + '…' + flat.slice(flat.length - half);
}

/** The progress message for a step, and how far the bar should move (percent of the whole). */
export function stepMessage(p: Pick<StepParams, 'step' | 'total' | 'text'>, lastStep: number): { message: string; increment: number } {
  const total = Math.max(1, p.total);
  const increment = (Math.max(0, p.step - lastStep) / total) * 100;
  const text = p.text !== undefined && p.text !== '' ? `: ${oneLine(p.text, 60)}` : '';
  return { message: `step ${p.step}/${p.total}${text}`, increment };
}
