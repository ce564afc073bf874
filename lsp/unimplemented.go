package lsp

import (
	"context"
	"slices"

	"go.lsp.dev/jsonrpc2"
	"go.uber.org/zap"
)

// The LSP methods diffill does not serve. Each request answers
// MethodNotFound (rather than reaching a nil interface and panicking, as
// protocol.ServerHandler would); notifications are ignored, as the spec
// says. Serving one of these means moving it to handlers in dispatch.go.
var unimplementedRequests = []string{
	"callHierarchy/incomingCalls",
	"callHierarchy/outgoingCalls",
	"codeAction/resolve",
	"codeLens/resolve",
	"completionItem/resolve",
	"documentLink/resolve",
	"inlayHint/resolve",
	"textDocument/codeLens",
	"textDocument/colorPresentation",
	"textDocument/declaration",
	"textDocument/definition",
	"textDocument/diagnostic",
	"textDocument/documentColor",
	"textDocument/documentHighlight",
	"textDocument/documentLink",
	"textDocument/documentSymbol",
	"textDocument/foldingRange",
	"textDocument/formatting",
	"textDocument/hover",
	"textDocument/implementation",
	"textDocument/inlayHint",
	"textDocument/inlineValue",
	"textDocument/linkedEditingRange",
	"textDocument/moniker",
	"textDocument/onTypeFormatting",
	"textDocument/prepareCallHierarchy",
	"textDocument/prepareRename",
	"textDocument/prepareTypeHierarchy",
	"textDocument/rangeFormatting",
	"textDocument/references",
	"textDocument/rename",
	"textDocument/selectionRange",
	"textDocument/semanticTokens/full",
	"textDocument/semanticTokens/full/delta",
	"textDocument/semanticTokens/range",
	"textDocument/signatureHelp",
	"textDocument/typeDefinition",
	"textDocument/willSaveWaitUntil",
	"typeHierarchy/subtypes",
	"typeHierarchy/supertypes",
	"workspace/diagnostic",
	"workspace/symbol",
	"workspace/willCreateFiles",
	"workspace/willDeleteFiles",
	"workspace/willRenameFiles",
	"workspaceSymbol/resolve",
}

var unimplementedNotifications = []string{
	"$/logTrace",
	"notebookDocument/didChange",
	"notebookDocument/didClose",
	"notebookDocument/didOpen",
	"notebookDocument/didSave",
	"textDocument/willSave",
	"workspace/didChangeWatchedFiles",
	"workspace/didChangeWorkspaceFolders",
	"workspace/didCreateFiles",
	"workspace/didDeleteFiles",
	"workspace/didRenameFiles",
}

// unimplemented answers a method not in handlers. Unknown methods get the
// same answer as the LSP methods listed above; the lists document intent
// and keep the logs quiet for the methods clients are expected to send.
func (s *Server) unimplemented(ctx context.Context, reply jsonrpc2.Replier, req jsonrpc2.Request) error {
	method := req.Method()
	if _, isCall := req.(*jsonrpc2.Call); !isCall {
		if !slices.Contains(unimplementedNotifications, method) {
			s.log.Debug("ignoring unknown notification", zap.String("method", method))
		}
		return nil
	}
	if !slices.Contains(unimplementedRequests, method) {
		s.log.Info("unknown method", zap.String("method", method))
	}
	_ = reply(ctx, nil, jsonrpc2.Errorf(jsonrpc2.MethodNotFound, "method not found: %s is not served by diffill", method))
	return nil
}
