// Package lsp is diffill's language server: completion, inline completion
// and infill/rewrite/fill-holes code actions from a bidirectional diffusion
// model, over LSP.
//
// # What the server serves
//
// initialize advertises: incremental text sync (open/close), completion,
// inline completion (LSP 3.18 textDocument/inlineCompletion), code actions
// of kinds refactor.rewrite.diffill.{infill,rewrite,fillHoles}, and
// executeCommand for diffill.infillRange, diffill.rewriteRange and
// diffill.fillHoles. positionEncoding is utf-8 when the client offers it
// (general.positionEncodings), else utf-16. Every other LSP request answers
// MethodNotFound (unimplemented.go); requests before initialize answer
// ServerNotInitialized; after shutdown, InvalidRequest. exit ends the
// session: Serve returns nil after shutdown (exit status 0), else an error
// (status 1).
//
//   - textDocument/completion: items whose textEdit replaces the word
//     before the cursor with that word and the model's text (so editors
//     that filter by the typed word keep them), best first (preselected),
//     more than one when the model gives distinct answers; isIncomplete is
//     true, so the editor asks again as the user types.
//   - textDocument/inlineCompletion: {items: [{insertText, range}]}, the
//     same answer as ghost text with the exact range it replaces.
//   - textDocument/codeAction: "Infill selection" and "Rewrite selection"
//     for a non-empty range, "Fill holes" when the document holds the hole
//     marker. Each carries its command with one argument:
//     {"textDocument": {"uri", "version"}, "range", "strength"?}. A command
//     whose version is not the document's current one is refused
//     (ContentModified); strength in (0, 1] is how much a rewrite re-masks.
//   - workspace/executeCommand runs the command and sends the edit with
//     workspace/applyEdit, versioned (documentChanges) when the client
//     supports it, so a client whose document has changed refuses it. The
//     result is {"applied": bool, "failureReason"?}; a client without
//     workspace/applyEdit gets {"applied": false, "edit": WorkspaceEdit}.
//
// # Progress, partial text, cancellation
//
// Model loading and commands report $/progress (under the request's
// workDoneToken, or a token made with window/workDoneProgress/create):
// begin, "step d/n" reports with a percentage, end. A command's progress is
// cancellable (window/workDoneProgress/cancel). After each denoising step
// of a command the server sends the notification
//
//	diffill/step {"textDocument": {"uri", "version"}, "command", "done",
//	              "total", "spans": [{"range", "text"}]}
//
// with each span's text so far; range is where the span lies in the
// version the command started from. Clients that do not draw it ignore it.
//
// $/cancelRequest (numeric or string ids) stops the work within one
// denoising step; the request answers RequestCancelled (-32800). A new
// completion (or inline completion) for a document cancels the previous
// one still running; a result computed for a document version that has
// since changed answers ContentModified (-32801). Completion requests wait
// for a pause in typing (adaptive: one and a half of the user's recent
// gaps between edits, at most the debounce setting). A completion and an
// inline completion at the same keystroke share one model run, and typing
// the characters of a shown completion is answered from a cache.
//
// diffill/stats (no params) answers the server's resource use and
// completion counters (see Stats).
//
// # Settings
//
// Read from initializationOptions, workspace/didChangeConfiguration and,
// when the client supports it, workspace/configuration (section
// "diffill"); either the object itself or one nested under "diffill":
// model, device, steps, sampler, temperature, maxTokens, contextTokens,
// holeMarker, debounce (see package settings). An invalid value is left
// out and reported with window/showMessage.
//
// # Errors and limits
//
// A model that fails to load is reported once with window/showMessage (what
// failed and what to do) and diffill/status (see StatusParams: "loading",
// then "ready" or "failed" with the same message, for a status display);
// while it cannot load, completions and inline completions answer empty
// (not an error per keystroke) and commands answer RequestFailed (-32803)
// with the reason. Changing the model or device setting tries again. Malformed frames are answered with a JSON-RPC error and
// skipped (package wire); unknown documents and positions on lines the
// document does not have answer InvalidParams; a character past the end of
// a line means its end. Documents are kept as valid UTF-8 (bad bytes
// become U+FFFD); one over Options.MaxDocumentBytes (32 MiB) or past
// Options.MaxOpenBytes in all is not kept, and requests on it say so.
// Nothing is written to disk.
package lsp
