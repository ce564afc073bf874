-- End-to-end test of `diffill serve` with Neovim's own LSP client as the
-- editor (Neovim 0.7 API: vim.lsp.start_client, buf_request_sync). Run by
-- lsp/e2e_test.go:
--
--   DIFFILL_BIN=... DIFFILL_MODEL=... DIFFILL_WORK=... nvim --headless --clean -c "luafile e2e.lua"
--
-- Each check prints "ok <name>" or "FAIL <name>: why"; the run ends with
-- "DONE" and exit status 0, or exit status 1 at the first failure.

local bin = assert(os.getenv("DIFFILL_BIN"))
local model = assert(os.getenv("DIFFILL_MODEL"))
local work = assert(os.getenv("DIFFILL_WORK"))

local function out(s)
  io.stdout:write(s .. "\n")
  io.stdout:flush()
end

local function fail(name, why)
  out("FAIL " .. name .. ": " .. tostring(why))
  vim.cmd("cquit 1")
end

local function check(name, cond, why)
  if cond then
    out("ok " .. name)
  else
    fail(name, why or "condition false")
  end
end

-- What the server sends that the test watches.
local steps = {}        -- diffill/step notifications
local applied = 0       -- workspace/applyEdit requests
local messages = {}     -- window/showMessage
local default_apply = vim.lsp.handlers["workspace/applyEdit"]

local client_id = vim.lsp.start_client({
  name = "diffill",
  cmd = { bin, "serve", "--model", model, "--log-level", "debug", "--log-file", work .. "/server.log" },
  root_dir = work,
  init_options = { diffill = { contextTokens = 256, debounce = 0, maxTokens = 100 } },
  handlers = {
    ["diffill/step"] = function(_, params) table.insert(steps, params) end,
    ["window/showMessage"] = function(_, params) table.insert(messages, params.message) end,
    ["workspace/applyEdit"] = function(err, params, ctx, config)
      applied = applied + 1
      return default_apply(err, params, ctx, config)
    end,
  },
})
check("start_client", client_id ~= nil, "no client")

local file = work .. "/main.go"
local lines = {
  "package main",
  "",
  "import \"strings\"",
  "",
  "func add(a, b int) int {",
  "\treturn ???",
  "}",
  "",
  "func main() {",
  "\tx := strings.Rep",
  "\tfor i := 0; i < 3; i++ {",
  "\t\tprintln(add(i, ???))",
  "\t}",
  "\t_ = x",
  "}",
}
vim.fn.writefile(lines, file)
vim.cmd("edit " .. file)
local buf = vim.api.nvim_get_current_buf()
vim.lsp.buf_attach_client(buf, client_id)
local client = vim.lsp.get_client_by_id(client_id)
check("initialize", vim.wait(20000, function() return client.initialized end, 20), "server did not initialize")

local sc = client.server_capabilities
check("capabilities", sc and sc.completionProvider and sc.codeActionProvider and sc.inlineCompletionProvider
  and sc.executeCommandProvider and #sc.executeCommandProvider.commands == 3, vim.inspect(sc))

local uri = vim.uri_from_bufnr(buf)

-- 1. Completion at a point: after "strings.Rep" on line 10.
-- (A position after the last character: where the cursor is in insert
-- mode; normal mode would clamp it onto the "p".)
local function at_end_of_rep()
  return { textDocument = { uri = vim.uri_from_bufnr(buf) }, position = { line = 9, character = #"\tx := strings.Rep" } }
end
local params = at_end_of_rep()
local res = vim.lsp.buf_request_sync(buf, "textDocument/completion", params, 20000)
local r = res and res[client_id]
check("completion answered", r and r.result and not r.err, vim.inspect(r))
local items = r.result.items
check("completion items", #items >= 1 and r.result.isIncomplete == true, vim.inspect(r.result))
local edit = items[1].textEdit
check("completion range is the word before the cursor",
  edit.range.start.line == 9 and edit.range.start.character == #"\tx := strings." and
  edit.range["end"].character == #"\tx := strings.Rep", vim.inspect(edit))
vim.lsp.util.apply_text_edits({ edit }, buf, "utf-16")
local line10 = vim.api.nvim_buf_get_lines(buf, 9, 10, true)[1]
check("completion applied", vim.startswith(line10, "\tx := strings.Rep") and #line10 > #"\tx := strings.Rep", line10)

-- Inline completion is LSP 3.18, newer than this Neovim: ask for it by name.
local ip = at_end_of_rep()
ip.position.character = #line10
ip.context = { triggerKind = 1 }
res = vim.lsp.buf_request_sync(buf, "textDocument/inlineCompletion", ip, 20000)
r = res and res[client_id]
check("inline completion", r and r.result and r.result.items and #r.result.items >= 1 and r.result.items[1].range ~= nil, vim.inspect(r))

-- 2. Fill holes, through the code action and its command, applied by
-- Neovim's workspace/applyEdit handler.
local function actions(range)
  local p = { textDocument = { uri = uri }, range = range, context = { diagnostics = {} } }
  local rs = vim.lsp.buf_request_sync(buf, "textDocument/codeAction", p, 20000)
  local x = rs and rs[client_id]
  if not x or x.err then fail("codeAction", vim.inspect(x)) end
  local by = {}
  for _, a in ipairs(x.result or {}) do by[a.title] = a end
  return by
end

local at_cursor = { start = { line = 0, character = 0 }, ["end"] = { line = 0, character = 0 } }
local fill = actions(at_cursor)["Fill holes"]
check("Fill holes offered", fill ~= nil and fill.command.command == "diffill.fillHoles", vim.inspect(fill))
local before_steps = #steps
res = vim.lsp.buf_request_sync(buf, "workspace/executeCommand", fill.command, 30000)
r = res and res[client_id]
check("Fill holes ran", r and not r.err and r.result and r.result.applied == true, vim.inspect(r))
local text = table.concat(vim.api.nvim_buf_get_lines(buf, 0, -1, true), "\n")
check("holes filled", not text:find("???", 1, true) and vim.startswith(text, "package main\n"), text)
check("diffill/step sent", #steps > before_steps, "no step notifications")

-- 3. Rewrite selection: the for loop (lines 11-13) is rewritten; the lines
-- around it are left alone.
local buflines = vim.api.nvim_buf_get_lines(buf, 0, -1, true)
local sel = { start = { line = 10, character = 1 }, ["end"] = { line = 12, character = 2 } }
local rw = actions(sel)["Rewrite selection"]
check("Rewrite selection offered", rw ~= nil and rw.command.command == "diffill.rewriteRange", vim.inspect(actions(sel)))
res = vim.lsp.buf_request_sync(buf, "workspace/executeCommand", rw.command, 30000)
r = res and res[client_id]
check("Rewrite selection ran", r and not r.err and r.result and r.result.applied == true, vim.inspect(r))
local after = vim.api.nvim_buf_get_lines(buf, 0, -1, true)
local same_head = table.concat(vim.list_slice(after, 1, 10), "\n") == table.concat(vim.list_slice(buflines, 1, 10), "\n")
local same_tail = after[#after] == "}" and after[#after - 1] == "\t_ = x"
check("Rewrite selection kept the rest", same_head and same_tail, table.concat(after, "\n"))

-- 4. Cancel: start Fill holes again (on a document with holes), cancel it
-- at its first step; nothing is applied and the server stays up.
vim.api.nvim_buf_set_lines(buf, 0, -1, true, lines)
local applied_before = applied
local got_answer = false
steps = {}
-- A fresh code action carries the buffer's current version.
local fresh = actions(at_cursor)["Fill holes"]
local ok, id = client.request("workspace/executeCommand", fresh.command, function() got_answer = true end, buf)
check("cancel: request sent", ok, "request failed")
vim.wait(20000, function() return #steps > 0 end, 1)
check("cancel: work started", #steps > 0, "no step before cancel")
client.cancel_request(id)
vim.wait(1000, function() return false end, 10)
check("cancel: nothing applied", applied == applied_before, "an edit was applied after cancel")
check("cancel: no answer delivered", got_answer == false, "the cancelled request's answer reached its handler")
local cur = table.concat(vim.api.nvim_buf_get_lines(buf, 0, -1, true), "\n")
check("cancel: document unchanged", cur == table.concat(lines, "\n"), cur)

-- The server still answers.
res = vim.lsp.buf_request_sync(buf, "textDocument/completion", at_end_of_rep(), 20000)
r = res and res[client_id]
check("completion after cancel", r and r.result and #r.result.items >= 1, vim.inspect(r))

check("no error messages", #messages == 0, vim.inspect(messages))

-- Shut the server down as Neovim does on exit.
client.stop()
vim.wait(5000, function() return client.is_stopped() end, 20)
check("server stopped", client.is_stopped(), "still running")
out("DONE")
vim.cmd("qall!")
