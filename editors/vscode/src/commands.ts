// Building the workspace/executeCommand requests for the three editing
// commands. The server computes the edit and applies it itself with
// workspace/applyEdit, checking the document version so that an edit
// computed for older text is refused. No vscode import: unit-tested under
// plain Node; positions are LSP positions (UTF-16 code units, as VS Code's).

export interface Position {
  line: number;
  character: number;
}

export interface Range {
  start: Position;
  end: Position;
}

export type Kind = 'infill' | 'rewrite' | 'fillHoles';

/** The server's command for each kind (issue 5; advertised in executeCommandProvider). */
export const SERVER_COMMANDS: Record<Kind, string> = {
  infill: 'diffill.infillRange',
  rewrite: 'diffill.rewriteRange',
  fillHoles: 'diffill.fillHoles',
};

/** The VS Code command ids. They differ from the server's because vscode-languageclient registers those itself. */
export const EDITOR_COMMANDS: Record<Kind, string> = {
  infill: 'diffill.infillSelection',
  rewrite: 'diffill.rewriteSelection',
  fillHoles: 'diffill.fillHolesInDocument',
};

export const TITLES: Record<Kind, string> = {
  infill: 'Infilling',
  rewrite: 'Rewriting',
  fillHoles: 'Filling holes',
};

export interface CommandInput {
  uri: string;
  version: number;
  /** The selection; start == end when nothing is selected. */
  selection: Range;
  /** Length of the selection's start line, to rewrite a whole line when nothing is selected. */
  lineLength: number;
  /** Rewrite strength (0..1), when the user set one. */
  strength?: number;
}

/**
 * The single argument of every diffill.* server command (lsp/code_action.go's
 * commandArgs): the document with the version the range refers to (the
 * server refuses the command if the document has changed since), the range,
 * and for a rewrite how much of it to re-mask.
 */
export interface CommandArgument {
  textDocument: { uri: string; version: number };
  range?: Range;
  strength?: number;
}

/** What workspace/executeCommand answers: whether the edit was applied, and why not. */
export interface CommandResult {
  applied: boolean;
  failureReason?: string;
}

/** The message to show for a command's result, or undefined when it worked. */
export function resultProblem(result: unknown): string | undefined {
  if (result === null || result === undefined) return undefined; // a server that answers null applied it itself
  if (typeof result !== 'object') return undefined;
  const r = result as Partial<CommandResult>;
  if (r.applied === false) return r.failureReason ? `the edit was not applied: ${r.failureReason}` : 'the edit was not applied';
  return undefined;
}

export type Built = { ok: true; command: string; arguments: [CommandArgument]; range?: Range } | { ok: false; message: string };

function isEmpty(r: Range): boolean {
  return r.start.line === r.end.line && r.start.character === r.end.character;
}

/** Orders start before end (a selection made upwards has them swapped). */
export function normalize(r: Range): Range {
  const before = r.start.line < r.end.line || (r.start.line === r.end.line && r.start.character <= r.end.character);
  return before ? r : { start: r.end, end: r.start };
}

/**
 * The executeCommand request for kind:
 *  - infill: the selection (empty: the cursor, where the server completes at a point);
 *  - rewrite: the selection (empty: the cursor's whole line);
 *  - fillHoles: no range; the server fills every hole marker in the document jointly.
 */
export function buildCommand(kind: Kind, input: CommandInput): Built {
  const command = SERVER_COMMANDS[kind];
  const arg: CommandArgument = { textDocument: { uri: input.uri, version: input.version } };
  if (kind === 'fillHoles') return { ok: true, command, arguments: [arg] };
  let range = normalize(input.selection);
  if (kind === 'rewrite') {
    if (isEmpty(range)) {
      if (input.lineLength === 0) return { ok: false, message: 'Select the code to rewrite (the current line is empty).' };
      range = { start: { line: range.start.line, character: 0 }, end: { line: range.start.line, character: input.lineLength } };
    }
    // The server takes (0, 1]; 0 or unset means its default, so it is not sent.
    if (input.strength !== undefined && Number.isFinite(input.strength) && input.strength > 0) {
      arg.strength = Math.min(1, input.strength);
    }
  }
  arg.range = range;
  return { ok: true, command, arguments: [arg], range };
}
