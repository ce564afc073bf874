// The Diffill extension: starts `diffill serve` through vscode-languageclient
// and adds what a plain LSP client lacks: the three editing commands, the
// forming text of a running command, a status bar item and settings sync.
// The logic worth testing lives in the vscode-free modules beside this one.

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as readline from 'node:readline';
import * as vscode from 'vscode';
import {
  CloseAction,
  DidChangeConfigurationNotification,
  ErrorAction,
  ExecuteCommandRequest,
  LanguageClient,
  type LanguageClientOptions,
  MessageType,
  RevealOutputChannelOn,
  type ServerOptions,
  ShowMessageNotification,
  State,
} from 'vscode-languageclient/node';
import { buildCommand, EDITOR_COMMANDS, type Kind, resultProblem, TITLES } from './commands';
import { findDiffill, INSTALL_COMMAND, pathFromEnviron, serverPath } from './discovery';
import { changeKind, documentSelector, isServed, mapServerSettings, modelLabel, type ServerSettings } from './settings';
import { parseServerLog } from './serverlog';
import { applyModelStatus, initialStatus, oneLine, parseModelStatus, parseStep, render, type Status, stepMessage } from './status';

const SECTION = 'diffill';

export async function activate(context: vscode.ExtensionContext): Promise<void> {
  const ext = new Extension();
  context.subscriptions.push(ext);
  await ext.startIfServed();
}

export function deactivate(): Thenable<void> | undefined {
  return current?.stop();
}

let current: Extension | undefined;

/**
 * The PATH the editor was started with, from its process's environment
 * (Linux: /proc/PPID/environ). VS Code's server gives the extension host a
 * login shell's PATH instead (see discovery.ts).
 */
function editorPath(): string | undefined {
  if (process.platform !== 'linux') return undefined;
  try {
    return pathFromEnviron(fs.readFileSync(`/proc/${process.ppid}/environ`, 'utf8'));
  } catch {
    return undefined;
  }
}

/**
 * Opens the Settings editor on one setting, in the tab where it can be set.
 * In a remote window (code-server, SSH, WSL, containers) the User tab hides
 * machine settings such as diffill.path ("No Settings Found"): they are on
 * the Remote tab. Other settings (diffill.model) are on the User tab.
 */
async function openSetting(id: string, machine: boolean): Promise<void> {
  const query = `@id:${id}`;
  if (machine && vscode.env.remoteName) await vscode.commands.executeCommand('workbench.action.openRemoteSettings', { query });
  else await vscode.commands.executeCommand('workbench.action.openSettings', query);
}

/** The server's message with one "diffill" in front (the server's own messages often start with it). */
function fromServer(message: string): string {
  return /^diffill\b/i.test(message) ? message : `diffill: ${message}`;
}

function lines(input: NodeJS.ReadableStream, each: (line: string) => void): void {
  readline.createInterface({ input, crlfDelay: Infinity, terminal: false }).on('line', each);
}

/** A command in flight: where its forming text is drawn and where its progress goes. */
interface Running {
  uri: string;
  editor?: vscode.TextEditor;
  range?: vscode.Range;
  lastStep: number;
  report(p: { message?: string; increment?: number }): void;
}

class Extension implements vscode.Disposable {
  private readonly output: vscode.LogOutputChannel;
  private readonly item: vscode.StatusBarItem;
  private readonly forming: vscode.TextEditorDecorationType;
  private readonly disposables: vscode.Disposable[] = [];
  private client: LanguageClient | undefined;
  private starting: Promise<LanguageClient | undefined> | undefined;
  private status: Status;
  private readonly running = new Map<string, Running>();

  constructor() {
    current = this;
    this.output = vscode.window.createOutputChannel('Diffill', { log: true });
    this.item = vscode.window.createStatusBarItem('diffill.status', vscode.StatusBarAlignment.Right, 100);
    this.item.name = 'Diffill';
    this.item.command = 'diffill.showLog';
    this.forming = vscode.window.createTextEditorDecorationType({
      backgroundColor: new vscode.ThemeColor('diffEditor.insertedTextBackground'),
      after: { color: new vscode.ThemeColor('editorGhostText.foreground'), margin: '0 0 0 1em', fontStyle: 'italic' },
    });
    const { settings } = this.serverSettings();
    this.status = initialStatus(modelLabel(settings), String(settings.device ?? 'cpu'));
    this.draw();

    const kinds: Kind[] = ['infill', 'rewrite', 'fillHoles'];
    for (const kind of kinds) {
      this.disposables.push(vscode.commands.registerCommand(EDITOR_COMMANDS[kind], () => this.run(kind)));
    }
    this.disposables.push(
      this.output,
      this.item,
      this.forming,
      vscode.commands.registerCommand('diffill.showLog', () => this.output.show()),
      vscode.commands.registerCommand('diffill.restartServer', () => this.restart()),
      vscode.workspace.onDidChangeConfiguration((e) => this.onConfigChange(e)),
      vscode.workspace.onDidOpenTextDocument(() => void this.startIfServed()),
      vscode.window.onDidChangeActiveTextEditor(() => this.draw()),
    );
  }

  dispose(): void {
    void this.stop();
    for (const d of this.disposables) d.dispose();
    if (current === this) current = undefined;
  }

  private config(): vscode.WorkspaceConfiguration {
    return vscode.workspace.getConfiguration(SECTION);
  }

  private workspaceFolder(): string | undefined {
    return vscode.workspace.workspaceFolders?.[0]?.uri.fsPath;
  }

  private serverSettings(): { settings: ServerSettings; problems: string[] } {
    const cfg = this.config();
    return mapServerSettings((k) => cfg.get(k), { home: os.homedir(), workspaceFolder: this.workspaceFolder() });
  }

  private setStatus(patch: Partial<Status>): void {
    this.status = { ...this.status, ...patch };
    this.draw();
  }

  private draw(): void {
    const r = render(this.status);
    this.item.text = r.text;
    this.item.tooltip = r.tooltip;
    this.item.backgroundColor =
      r.severity === 'error'
        ? new vscode.ThemeColor('statusBarItem.errorBackground')
        : r.severity === 'warning'
          ? new vscode.ThemeColor('statusBarItem.warningBackground')
          : undefined;
    // Shown while diffill runs or has something to say, and always in a file it serves.
    const doc = vscode.window.activeTextEditor?.document;
    const served = doc !== undefined && isServed(this.config().get('languages'), doc.languageId, doc.uri.scheme);
    if (served || this.status.server !== 'stopped') this.item.show();
    else this.item.hide();
  }

  /** Starts the server once any open document is one diffill serves. */
  async startIfServed(): Promise<void> {
    if (this.client || this.starting || this.status.server === 'failed') return;
    const languages = this.config().get('languages');
    if (vscode.workspace.textDocuments.some((d) => isServed(languages, d.languageId, d.uri.scheme))) await this.ensureClient();
  }

  private ensureClient(): Promise<LanguageClient | undefined> {
    if (this.client) return Promise.resolve(this.client);
    this.starting ??= this.start().finally(() => {
      this.starting = undefined;
    });
    return this.starting;
  }

  private async start(): Promise<LanguageClient | undefined> {
    const cfg = this.config();
    const fromEditor = editorPath();
    const found = findDiffill({
      configured: cfg.get<string>('path') ?? '',
      env: process.env,
      editorPath: fromEditor,
      platform: process.platform,
      home: os.homedir(),
      workspaceFolder: this.workspaceFolder(),
      isExecutable: (p) => {
        try {
          fs.accessSync(p, fs.constants.X_OK);
          return fs.statSync(p).isFile();
        } catch {
          return false;
        }
      },
    });
    if (!found.ok) {
      this.output.error(`${found.message} ${found.fix}`);
      this.setStatus({ server: 'failed', error: found.message });
      void this.explainMissingBinary(found.message, found.fix);
      return undefined;
    }
    this.output.info(`starting ${found.path} serve (found via ${found.source})`);
    const { settings, problems } = this.serverSettings();
    this.reportProblems(problems);
    this.setStatus({ server: 'starting', error: undefined, model: modelLabel(settings), device: String(settings.device ?? 'cpu') });

    // What diffill runs (go) is looked up on the same PATHs as diffill itself.
    const env = { ...process.env };
    const spath = serverPath({ env: process.env, editorPath: fromEditor, platform: process.platform });
    if (spath !== undefined && spath !== process.env.PATH) env.PATH = spath;
    const serverOptions: ServerOptions = {
      // No transport: vscode-languageclient would append --stdio; diffill serve speaks stdio by default.
      command: found.path,
      args: ['serve'],
      options: { cwd: this.workspaceFolder() ?? os.homedir(), env },
    };
    const clientOptions: LanguageClientOptions = {
      documentSelector: documentSelector(cfg.get('languages')),
      outputChannel: this.output,
      // The client would raise a toast for every failed request (one per keystroke when something is wrong) and
      // offer the log; failures go to the log and the status bar instead, and the server's own messages
      // (window/showMessage) are shown once, below.
      revealOutputChannelOn: RevealOutputChannelOn.Never,
      stdioOptions: {
        stdout: (input, channel) => lines(input, (l) => channel.info(l)),
        // zap's levels, not "error" for every line.
        stderr: (input, channel) =>
          lines(input, (l) => {
            const { level, text } = parseServerLog(l);
            channel[level](text);
          }),
      },
      initializationOptions: settings,
      errorHandler: {
        error: (error) => {
          this.output.error(`connection error: ${error.message}`);
          return { action: ErrorAction.Continue };
        },
        closed: () => {
          this.setStatus({ server: 'failed', error: 'the diffill server stopped (see the log)' });
          return { action: CloseAction.DoNotRestart, message: 'The diffill server stopped. Run "Diffill: Restart Server" after reading the log.' };
        },
      },
      middleware: {
        workspace: {
          // The server registers for didChangeConfiguration; the client would then send the raw "diffill" section
          // (0 and "" for unset values, extension-only keys). onConfigChange sends the mapped settings instead.
          didChangeConfiguration: async () => {},
          // Answer the server's workspace/configuration pull for "diffill" with the mapped settings.
          configuration: async (params, token, next) => {
            const result = await next(params, token);
            if (!Array.isArray(result)) return result;
            return params.items.map((item, i) => (item.section === SECTION ? this.serverSettings().settings : result[i]));
          },
        },
        provideCompletionItem: (doc, pos, ctx, token, next) => this.track(next(doc, pos, ctx, token)),
        provideInlineCompletionItems: (doc, pos, ctx, token, next) => this.track(next(doc, pos, ctx, token)),
      },
    };
    const client = new LanguageClient('diffill', 'Diffill', serverOptions, clientOptions);
    client.onNotification('diffill/step', (p: unknown) => this.onStep(p));
    client.onNotification('diffill/status', (p: unknown) => {
      const m = parseModelStatus(p);
      if (!m) return;
      this.setStatus(applyModelStatus(m));
      if (m.state !== 'failed') return;
      // The one message for a model that cannot load, with the setting at hand; the server's window/showMessage
      // of the same text (for clients without diffill/status) is not shown again.
      const msg = this.status.modelError ?? m.model;
      this.output.error(`model: ${msg}`);
      void vscode.window.showErrorMessage(fromServer(msg), 'Open Settings', 'Show Log').then(async (a) => {
        if (a === 'Open Settings') await openSetting(`${SECTION}.model`, false);
        if (a === 'Show Log') this.output.show();
      });
    });
    // Replaces the client's default so that errors also reach the status bar and offer the log.
    client.onNotification(ShowMessageNotification.type, (m) => {
      if (m.type === MessageType.Error) {
        if (m.message === this.status.modelError) return; // shown from diffill/status
        this.setStatus({ error: m.message });
        void vscode.window.showErrorMessage(fromServer(m.message), 'Show Log').then((a) => a && this.output.show());
      } else if (m.type === MessageType.Warning) void vscode.window.showWarningMessage(fromServer(m.message));
      else void vscode.window.showInformationMessage(fromServer(m.message));
    });
    client.onDidChangeState((e) => {
      if (e.newState === State.Running) this.setStatus({ server: 'running' });
      else if (e.newState === State.Starting) this.setStatus({ server: 'starting' });
      else if (this.status.server !== 'failed') this.setStatus({ server: 'stopped', busy: 0, step: undefined });
    });
    this.client = client;
    try {
      await client.start();
    } catch (err) {
      const msg = err instanceof Error ? err.message : String(err);
      this.output.error(`diffill serve did not start: ${msg}`);
      this.setStatus({ server: 'failed', error: msg });
      this.client = undefined;
      void vscode.window.showErrorMessage(`diffill serve did not start: ${msg}`, 'Show Log').then((a) => a && this.output.show());
      return undefined;
    }
    const info = client.initializeResult?.serverInfo;
    this.setStatus({ server: 'running', version: info?.version });
    this.output.info(`server ready${info ? `: ${info.name} ${info.version ?? ''}` : ''}`);
    return client;
  }

  private async explainMissingBinary(message: string, fix: string): Promise<void> {
    const choice = await vscode.window.showErrorMessage(`${message} ${fix}`, 'Open Settings', 'Copy Build Command');
    if (choice === 'Open Settings') await openSetting(`${SECTION}.path`, true);
    if (choice === 'Copy Build Command') await vscode.env.clipboard.writeText(INSTALL_COMMAND);
  }

  private reportProblems(problems: string[]): void {
    if (problems.length === 0) return;
    for (const p of problems) this.output.warn(p);
    void vscode.window.showWarningMessage(`Diffill: ${problems[0]}`);
  }

  async stop(): Promise<void> {
    const c = this.client;
    this.client = undefined;
    if (c) {
      try {
        await c.stop(2000);
      } catch (err) {
        this.output.warn(`stopping the server: ${String(err)}`);
      }
    }
  }

  private async restart(): Promise<void> {
    await this.stop();
    this.setStatus({ server: 'stopped', error: undefined, modelError: undefined, modelState: undefined, busy: 0, step: undefined });
    await this.ensureClient();
  }

  private onConfigChange(e: vscode.ConfigurationChangeEvent): void {
    const kind = changeKind((s) => e.affectsConfiguration(s));
    if (kind === 'restart') {
      this.output.info('diffill.path or diffill.languages changed: restarting the server');
      void this.restart();
      return;
    }
    if (kind !== 'notify') return;
    const { settings, problems } = this.serverSettings();
    this.reportProblems(problems);
    // A new model or device is loaded afresh: the old failure no longer stands (diffill/status tells the next outcome).
    const reload = e.affectsConfiguration(`${SECTION}.model`) || e.affectsConfiguration(`${SECTION}.device`);
    this.setStatus({
      model: modelLabel(settings),
      device: String(settings.device ?? 'cpu'),
      ...(reload ? { modelError: undefined, modelState: undefined } : {}),
    });
    const c = this.client;
    if (c && c.state === State.Running) {
      this.output.info(`settings changed: ${JSON.stringify(settings)}`);
      void c.sendNotification(DidChangeConfigurationNotification.type, { settings: { [SECTION]: settings } });
    }
  }

  /** Counts a request as busy until it settles; errors other than cancellation reach the status bar. */
  private track<T>(r: vscode.ProviderResult<T>): vscode.ProviderResult<T> {
    if (r === undefined || r === null || typeof (r as Thenable<T>).then !== 'function') return r;
    this.setStatus({ busy: this.status.busy + 1 });
    return (async () => {
      try {
        const v = await (r as Thenable<T>);
        if (this.status.error !== undefined && this.status.server === 'running') this.setStatus({ error: undefined });
        return v;
      } catch (err) {
        if (!(err instanceof vscode.CancellationError)) this.setStatus({ error: err instanceof Error ? err.message : String(err) });
        throw err;
      } finally {
        this.setStatus({ busy: Math.max(0, this.status.busy - 1), step: this.status.busy <= 1 ? undefined : this.status.step });
      }
    })();
  }

  private async run(kind: Kind): Promise<void> {
    const editor = vscode.window.activeTextEditor;
    if (!editor) {
      void vscode.window.showInformationMessage('Diffill: open a file first.');
      return;
    }
    const doc = editor.document;
    const languages = this.config().get('languages');
    if (!isServed(languages, doc.languageId, doc.uri.scheme)) {
      void vscode.window.showWarningMessage(
        `Diffill serves ${JSON.stringify(languages)}; this file is "${doc.languageId}". Add it to the diffill.languages setting.`,
      );
      return;
    }
    const client = await this.ensureClient();
    if (!client) return;
    const c2p = client.code2ProtocolConverter;
    const sel = editor.selection;
    const strength = this.config().get<number | null>('rewriteStrength');
    const built = buildCommand(kind, {
      uri: c2p.asUri(doc.uri),
      version: doc.version,
      selection: c2p.asRange(new vscode.Range(sel.anchor, sel.active)),
      lineLength: doc.lineAt(sel.active.line).text.length,
      strength: strength ?? undefined,
    });
    if (!built.ok) {
      void vscode.window.showInformationMessage(`Diffill: ${built.message}`);
      return;
    }
    const uri = built.arguments[0].textDocument.uri;
    if (this.running.has(uri)) {
      void vscode.window.showInformationMessage('Diffill: a command is already running on this file.');
      return;
    }
    const range = built.range ? client.protocol2CodeConverter.asRange(built.range) : undefined;
    this.output.info(`${built.command} ${JSON.stringify(built.arguments[0])}`);
    await vscode.window.withProgress(
      { location: vscode.ProgressLocation.Notification, title: `Diffill: ${TITLES[kind]}`, cancellable: true },
      async (progress, token) => {
        this.running.set(uri, { uri, editor, range, lastStep: 0, report: (p) => progress.report(p) });
        if (range) editor.setDecorations(this.forming, [{ range }]);
        try {
          const req = client.sendRequest(ExecuteCommandRequest.type, { command: built.command, arguments: built.arguments }, token);
          const problem = resultProblem(await this.track(req));
          if (problem) throw new Error(problem);
        } catch (err) {
          if (token.isCancellationRequested) {
            this.output.info(`${built.command} cancelled`);
            return;
          }
          const msg = err instanceof Error ? err.message : String(err);
          this.output.error(`${built.command}: ${msg}`);
          this.setStatus({ error: msg });
          void vscode.window.showErrorMessage(`Diffill: ${TITLES[kind].toLowerCase()} failed: ${msg}`, 'Show Log').then((a) => a && this.output.show());
        } finally {
          this.running.delete(uri);
          editor.setDecorations(this.forming, []);
          this.setStatus({ step: undefined });
        }
      },
    );
  }

  private onStep(raw: unknown): void {
    const p = parseStep(raw);
    if (!p) return;
    this.setStatus({ step: { done: p.step, total: p.total } });
    const r = this.running.get(p.uri);
    if (!r) return;
    const { message, increment } = stepMessage(p, r.lastStep);
    r.lastStep = p.step;
    r.report({ message, increment });
    if (!r.editor || this.config().get<boolean>('showStepText') === false) return;
    // Each span's forming text after it, in the ghost-text colour; without spans, after the command's range.
    const c2 = this.client?.protocol2CodeConverter;
    const decorations: vscode.DecorationOptions[] =
      p.spans.length > 0 && c2
        ? p.spans.map((sp) => ({
            range: c2.asRange(sp.range),
            renderOptions: { after: { contentText: `⟳ ${p.step}/${p.total}  ${oneLine(sp.text)}` } },
          }))
        : r.range && p.text !== undefined
          ? [{ range: r.range, renderOptions: { after: { contentText: `⟳ ${p.step}/${p.total}  ${oneLine(p.text)}` } } }]
          : [];
    if (decorations.length) r.editor.setDecorations(this.forming, decorations);
  }
}
