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

/** The single argument of every diffill.* server command. */
export interface CommandArgument {
  uri: string;
  version: number;
  range?: Range;
  strength?: number;
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
  const arg: CommandArgument = { uri: input.uri, version: input.version };
  if (kind === 'fillHoles') return { ok: true, command, arguments: [arg] };
  let range = normalize(input.selection);
  if (kind === 'rewrite') {
    if (isEmpty(range)) {
      if (input.lineLength === 0) return { ok: false, message: 'Select the code to rewrite (the current line is empty).' };
      range = { start: { line: range.start.line, character: 0 }, end: { line: range.start.line, character: input.lineLength } };
    }
    if (input.strength !== undefined && Number.isFinite(input.strength)) {
      arg.strength = Math.min(1, Math.max(0, input.strength));
    }
  }
  arg.range = range;
  return { ok: true, command, arguments: [arg], range };
}
