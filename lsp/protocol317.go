package lsp

// What LSP 3.16-3.18 added that go.lsp.dev/protocol v0.12.0 (LSP 3.15) does
// not model, and the parts of the 3.15 types the server decodes its own way.
// Kept in this one file so that a move to a newer protocol module is one
// deletion.

import (
	"encoding/json"

	"go.lsp.dev/jsonrpc2"
	"go.lsp.dev/protocol"

	"github.com/diffill/diffill/lsp/document"
)

// Error codes added after 3.15.
const (
	codeRequestCancelled jsonrpc2.Code = -32800 // 3.16: the client cancelled the request
	codeContentModified  jsonrpc2.Code = -32801 // 3.16: the document changed; the result would be stale
	codeRequestFailed    jsonrpc2.Code = -32803 // 3.17: well-formed request that the server could not serve
)

// Methods added after 3.15.
const (
	methodInlineCompletion = "textDocument/inlineCompletion" // 3.18
)

// positionEncoding names (3.17).
const (
	encodingUTF8  = "utf-8"
	encodingUTF16 = "utf-16"
	encodingUTF32 = "utf-32"
)

// serverCapabilities adds the 3.17/3.18 fields to the 3.15 ones.
type serverCapabilities struct {
	protocol.ServerCapabilities
	PositionEncoding         string                   `json:"positionEncoding,omitempty"`
	InlineCompletionProvider *inlineCompletionOptions `json:"inlineCompletionProvider,omitempty"`
}

type inlineCompletionOptions struct {
	WorkDoneProgress bool `json:"workDoneProgress,omitempty"`
}

type initializeResult struct {
	Capabilities serverCapabilities   `json:"capabilities"`
	ServerInfo   *protocol.ServerInfo `json:"serverInfo,omitempty"`
}

// initializeParams are the fields of initialize the server reads. Decoding
// them into a small struct of its own, rather than protocol's 3.15 model,
// keeps a client that sends newer or odd capabilities from failing
// initialize.
type initializeParams struct {
	ProcessID             *int64               `json:"processId"`
	ClientInfo            *protocol.ClientInfo `json:"clientInfo"`
	RootURI               string               `json:"rootUri"`
	InitializationOptions json.RawMessage      `json:"initializationOptions"`
	Capabilities          clientCapabilities   `json:"capabilities"`
	Trace                 string               `json:"trace"`
}

// clientCapabilities are the client capabilities the server acts on.
type clientCapabilities struct {
	General struct {
		PositionEncodings []string `json:"positionEncodings"` // 3.17
	} `json:"general"`
	Workspace struct {
		ApplyEdit     bool `json:"applyEdit"`
		WorkspaceEdit struct {
			DocumentChanges bool `json:"documentChanges"`
		} `json:"workspaceEdit"`
		Configuration          bool `json:"configuration"`
		DidChangeConfiguration struct {
			DynamicRegistration bool `json:"dynamicRegistration"`
		} `json:"didChangeConfiguration"`
	} `json:"workspace"`
	Window struct {
		WorkDoneProgress bool `json:"workDoneProgress"`
	} `json:"window"`
}

// inlineCompletionParams (3.18).
type inlineCompletionParams struct {
	TextDocument protocol.TextDocumentIdentifier `json:"textDocument"`
	Position     protocol.Position               `json:"position"`
	Context      struct {
		// TriggerKind: 1 invoked explicitly by the user, 2 automatic
		// (while typing).
		TriggerKind int `json:"triggerKind"`
	} `json:"context"`
	WorkDoneToken json.RawMessage `json:"workDoneToken,omitempty"`
}

const inlineTriggerInvoked = 1

type inlineCompletionList struct {
	Items []inlineCompletionItem `json:"items"`
}

type inlineCompletionItem struct {
	InsertText string          `json:"insertText"`
	FilterText string          `json:"filterText,omitempty"`
	Range      *protocol.Range `json:"range,omitempty"`
}

// didChangeParams: protocol's change event cannot tell a full-text change
// from an edit at 0:0 (its Range is not a pointer); document.Change can.
type didChangeParams struct {
	TextDocument protocol.VersionedTextDocumentIdentifier `json:"textDocument"`
	Changes      []document.Change                        `json:"contentChanges"`
}

// cancelParams: protocol's cancel handler reads the id into interface{},
// where a numeric id becomes float64 and never matches jsonrpc2's int32
// ids, so cancellation from VS Code did nothing. The id is read raw here.
type cancelParams struct {
	ID json.RawMessage `json:"id"`
}

// progressParams carries a client- or server-made token verbatim: tokens
// are integers or strings, and must be echoed exactly.
type progressParams struct {
	Token json.RawMessage `json:"token"`
	Value any             `json:"value"`
}

type workDoneProgressCreateParams struct {
	Token json.RawMessage `json:"token"`
}

type workDoneProgressCancelParams struct {
	Token json.RawMessage `json:"token"`
}

// optionalVersionedTextDocumentIdentifier: protocol's has a non-pointer
// version, which cannot say null (the version is unknown).
type optionalVersionedTextDocumentIdentifier struct {
	URI     protocol.DocumentURI `json:"uri"`
	Version *int32               `json:"version"`
}

// textDocumentEdit and workspaceEdit are built here so that the version
// sent with an edit is exactly the one the edit was computed for.
type textDocumentEdit struct {
	TextDocument optionalVersionedTextDocumentIdentifier `json:"textDocument"`
	Edits        []protocol.TextEdit                     `json:"edits"`
}

type workspaceEdit struct {
	Changes         map[protocol.DocumentURI][]protocol.TextEdit `json:"changes,omitempty"`
	DocumentChanges []textDocumentEdit                           `json:"documentChanges,omitempty"`
}

type applyWorkspaceEditParams struct {
	Label string        `json:"label,omitempty"`
	Edit  workspaceEdit `json:"edit"`
}

type executeCommandParams struct {
	Command       string            `json:"command"`
	Arguments     []json.RawMessage `json:"arguments,omitempty"`
	WorkDoneToken json.RawMessage   `json:"workDoneToken,omitempty"`
}
