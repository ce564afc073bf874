-- End-to-end scenarios: a real Neovim (headless) with the plugin, talking to
-- the real `diffill serve`. nvim_test.go runs one scenario per Neovim process:
--   DIFFILL_BIN=... DIFFILL_TEST=<name> DIFFILL_RESULT=<file> nvim --headless -u NONE ... -c 'luafile test/e2e.lua' a.go
-- A scenario is a coroutine: wait() and sleep() yield to Neovim's main loop,
-- so typed keys, autocommands and LSP messages are handled as in a session.
-- The result file gets "PASS" or "FAIL: why", then the log.

local result_file = assert(os.getenv('DIFFILL_RESULT'), 'DIFFILL_RESULT not set')
local name = assert(os.getenv('DIFFILL_TEST'), 'DIFFILL_TEST not set')
local log_lines = {}

local function log(fmt, ...)
  local msg = select('#', ...) > 0 and fmt:format(...) or fmt
  table.insert(log_lines, ('[%7.2f] %s'):format(vim.loop.hrtime() / 1e9 % 10000, msg))
end

local function finish(ok, why)
  local f = assert(io.open(result_file, 'w'))
  f:write(ok and 'PASS\n' or ('FAIL: ' .. tostring(why) .. '\n'))
  f:write(table.concat(log_lines, '\n'), '\n')
  f:close()
  vim.schedule(function()
    vim.cmd(ok and 'qall!' or 'cquit! 1')
  end)
end

local co
local function resume()
  local ok, err = coroutine.resume(co)
  if not ok then
    finish(false, debug.traceback(co, err))
  elseif coroutine.status(co) == 'dead' then
    finish(true)
  end
end

local function sleep(ms)
  vim.defer_fn(resume, ms)
  coroutine.yield()
end

local function wait(what, timeout_ms, cond)
  local deadline = vim.loop.now() + timeout_ms
  while true do
    local v = cond()
    if v then
      return v
    end
    if vim.loop.now() > deadline then
      error(('timed out after %d ms waiting for %s'):format(timeout_ms, what), 2)
    end
    sleep(50)
  end
end

local function check(cond, fmt, ...)
  if not cond then
    error(fmt:format(...), 2)
  end
end

-- Feeds keys as if typed (mappings apply), then lets Neovim process them.
local function type_keys(keys, pause)
  vim.api.nvim_feedkeys(vim.api.nvim_replace_termcodes(keys, true, false, true), 'mt', false)
  sleep(pause or 100)
end

local function buf_text()
  return table.concat(vim.api.nvim_buf_get_lines(0, 0, -1, false), '\n')
end

-- Model load and decoding on a loaded 2-core CI machine: be generous; the waits end as soon as the thing happens.
local SLOW = tonumber(os.getenv('DIFFILL_TEST_TIMEOUT_MS') or '') or 120000

local diffill

local function setup_and_attach(extra)
  vim.cmd('filetype on')
  vim.cmd('filetype detect')
  diffill = require('diffill')
  -- DIFFILL_TEST_MODEL: a checkpoint directory instead of the built-in model (sent as the model setting).
  local model = os.getenv('DIFFILL_TEST_MODEL')
  diffill.setup(vim.tbl_deep_extend('force', { path = os.getenv('DIFFILL_BIN'), progress = true, model = model ~= '' and model or nil }, extra or {}))
  -- The file given on the command line was loaded before setup(): setup() attaches open buffers itself.
  local bufnr = vim.api.nvim_get_current_buf()
  check(vim.bo[bufnr].filetype == 'go', 'filetype is %q, want go', vim.bo[bufnr].filetype)
  local c = wait('the server to initialize', SLOW, function()
    local c = diffill.client()
    return c and c.initialized ~= false and c.server_capabilities ~= nil and c.attached_buffers and c.attached_buffers[bufnr] and c
  end)
  log('client %d attached, offset encoding %s', c.id, tostring(c.offset_encoding))
  return c, bufnr
end

-- Runs an Ex command of the plugin and waits for its User DiffillDone;
-- returns the diffill/step notifications seen meanwhile (User DiffillStep).
local function run_command(ex)
  local done = false
  local steps = {}
  local g = vim.api.nvim_create_augroup('diffill_test_run', { clear = true })
  vim.api.nvim_create_autocmd('User', {
    group = g,
    pattern = 'DiffillStep',
    callback = function()
      table.insert(steps, vim.deepcopy(diffill._state.step))
    end,
  })
  vim.api.nvim_create_autocmd('User', {
    group = g,
    pattern = 'DiffillDone',
    callback = function()
      done = true
    end,
  })
  log('running %s', ex)
  diffill._state.last_error = nil
  local before = vim.loop.now()
  vim.cmd(ex)
  wait(ex .. ' to finish', SLOW, function()
    return done
  end)
  vim.api.nvim_del_augroup_by_id(g)
  log('%s finished in %d ms with %d diffill/step notifications', ex, vim.loop.now() - before, #steps)
  check(diffill._state.last_error == nil, '%s failed: %s', ex, tostring(diffill._state.last_error))
  return steps
end

local scenarios = {}

-- setup() starts the server for the Go buffer, defines the commands and the
-- accept mapping, and the server offers what the plugin uses.
scenarios.setup = function()
  local c = setup_and_attach()
  for _, cmd in ipairs({ 'DiffillInfill', 'DiffillRewrite', 'DiffillFillHoles' }) do
    check(vim.fn.exists(':' .. cmd) == 2, ':%s is not defined', cmd)
  end
  check(vim.fn.maparg('<Tab>', 'i') ~= '', '<Tab> is not mapped in insert mode')
  local caps = c.server_capabilities
  check(caps.inlineCompletionProvider, 'server does not advertise inlineCompletionProvider: %s', vim.inspect(caps))
  check(caps.completionProvider, 'server does not advertise completionProvider')
  local cmds = {}
  for _, n in ipairs((caps.executeCommandProvider or {}).commands or {}) do
    cmds[n] = true
  end
  for _, n in ipairs({ 'diffill.infillRange', 'diffill.rewriteRange', 'diffill.fillHoles' }) do
    check(cmds[n], 'server does not list %s in executeCommandProvider', n)
  end
  check(vim.bo.omnifunc == 'v:lua.vim.lsp.omnifunc', "'omnifunc' is %q", vim.bo.omnifunc)
  -- A second Go buffer shares the one server (the model loads once).
  vim.cmd('edit ' .. vim.fn.fnameescape(vim.fn.expand('%:p:h') .. '/b.go'))
  local b2 = vim.api.nvim_get_current_buf()
  wait('the second buffer to attach', 10000, function()
    return c.attached_buffers[b2]
  end)
  local n = 0
  for _, cl in ipairs(require('diffill.util').clients()) do
    n = n + 1
    check(cl.id == c.id, 'a second diffill client was started')
  end
  check(n == 1, '%d diffill clients, want 1', n)
  local m = os.getenv('DIFFILL_TEST_MODEL') or ''
  local label = m ~= '' and vim.fn.fnamemodify(m, ':t') or 'built-in'
  check(vim.startswith(diffill.statusline(), 'diffill ' .. label .. '·cpu'), 'statusline: %q', diffill.statusline())
  log('statusline: %s', diffill.statusline())
end

-- textDocument/completion at the end of a statement gives items that insert text.
scenarios.completion = function()
  local c, bufnr = setup_and_attach()
  local row = vim.fn.search('COMPLETE_HERE', 'n') - 1
  check(row >= 0, 'fixture has no COMPLETE_HERE line')
  local line = vim.api.nvim_buf_get_lines(bufnr, row, row + 1, false)[1]
  local col = #line:match('^(.-)%s*// COMPLETE_HERE')
  local params = {
    textDocument = { uri = vim.uri_from_bufnr(bufnr) },
    position = require('diffill.util').position(bufnr, row, col, c.offset_encoding),
    context = { triggerKind = 1 },
  }
  local res = vim.lsp.buf_request_sync(bufnr, 'textDocument/completion', params, SLOW)
  check(res and res[c.id], 'no completion answer: %s', vim.inspect(res))
  check(res[c.id].err == nil, 'completion error: %s', vim.inspect(res[c.id].err))
  local result = res[c.id].result
  local items = result and (result.items or result) or {}
  check(#items > 0, 'no completion items: %s', vim.inspect(result))
  local first = items[1]
  local text = first.textEdit and first.textEdit.newText or first.insertText or first.label
  check(type(text) == 'string' and text ~= '', 'first item inserts nothing: %s', vim.inspect(first))
  log('%d completion item(s); first inserts %q', #items, text)
end

-- Typing in insert mode shows ghost text (extmark fallback on 0.7-0.11,
-- native inline completion on 0.12+), <Tab> inserts it, moving dismisses it.
scenarios.ghost = function()
  local _, bufnr = setup_and_attach()
  local row = vim.fn.search('GHOST_HERE', 'n')
  check(row > 0, 'fixture has no GHOST_HERE line')
  -- Open a line under the marker comment (autoindent keeps the tab) and type the start of a statement.
  vim.bo.autoindent = true
  vim.api.nvim_win_set_cursor(0, { row, 0 })
  type_keys('oreturn ')
  local native = diffill._state.native_ghost
  local ghost = require('diffill.ghost')
  local shown
  if native then
    local ns = vim.api.nvim_get_namespaces()['nvim.lsp.inline_completion']
    shown = wait('native ghost text', SLOW, function()
      local marks = ns and vim.api.nvim_buf_get_extmarks(bufnr, ns, 0, -1, { details = true }) or {}
      return marks[1] and marks[1][4].virt_text and marks[1][4].virt_text[1][1]
    end)
  else
    -- The server debounces and may answer before the model is warm with nothing; keep typing like a user until it shows.
    local deadline = vim.loop.now() + SLOW
    while not ghost.visible(bufnr) do
      check(vim.loop.now() < deadline, 'no ghost text within %d ms', SLOW)
      sleep(500)
      if not ghost.visible(bufnr) then
        type_keys('<BS> ', 50)
      end
    end
    shown = ghost.text(bufnr)
    local marks = vim.api.nvim_buf_get_extmarks(bufnr, ghost.ns, 0, -1, { details = true })
    check(#marks == 1, 'want one ghost extmark, have %d', #marks)
    check(marks[1][4].virt_text[1][1] == vim.split(shown, '\n')[1], 'extmark shows %q, ghost is %q', marks[1][4].virt_text[1][1], shown)
  end
  log('ghost text: %q', shown)
  check(vim.api.nvim_get_mode().mode == 'i', 'mode is %s, want insert', vim.api.nvim_get_mode().mode)
  local before = buf_text()
  -- The ghost is drawn, not written: the line does not go on with it yet. (It may be
  -- elsewhere in the buffer: the copy prior offers text the file already has.)
  local first = vim.split(shown, '\n')[1]
  local rest = vim.api.nvim_get_current_line():sub(vim.api.nvim_win_get_cursor(0)[2] + 1)
  check(first:match('^%s*$') or rest:sub(1, #first) ~= first, 'the ghost text is in the buffer before accepting')
  type_keys('<Tab>', 200)
  local after = buf_text()
  check(after ~= before, '<Tab> did not change the buffer')
  local line = vim.api.nvim_get_current_line()
  check(line:find(vim.split(shown, '\n')[1], 1, true), 'after <Tab> the line is %q; want it to contain %q', line, shown)
  log('after <Tab>: %q', line)
  -- No ghost and <Tab>: a real tab is typed.
  type_keys('<Esc>', 100)
  check(not ghost.visible(bufnr), 'ghost text still shown after <Esc>')
  check(#vim.api.nvim_buf_get_extmarks(bufnr, ghost.ns, 0, -1, {}) == 0, 'ghost extmark left after <Esc>')
end

-- Asks for ghost text now (ghost.trigger, as a keystroke would after the
-- debounce) and waits for the server's answer; returns it.
local function ask(bufnr)
  local ghost = require('diffill.ghost')
  local n = (ghost.answer(bufnr) or { n = 0 }).n
  ghost.trigger(bufnr)
  return wait('the server to answer', SLOW, function()
    local a = ghost.answer(bufnr)
    return a and a.n > n and a
  end)
end

-- Asks until the server has ghost text to show, nudging with keys between.
local function ask_until_ghost(bufnr, nudge)
  local ghost = require('diffill.ghost')
  local deadline = vim.loop.now() + SLOW
  ask(bufnr)
  while not ghost.visible(bufnr) do
    check(vim.loop.now() < deadline, 'no ghost text within %d ms', SLOW)
    type_keys(nudge, 50)
    ask(bufnr)
  end
end

-- The ghost text is what the server's latest answer says, and nothing when
-- it says nothing; typing the ghost's next characters keeps the rest on
-- screen until the server answers for the new text, and that answer decides.
-- Requests go out only when the test asks (a debounce of a minute): what
-- shows between is the plugin's own doing.
scenarios.ghost_answers = function()
  local _, bufnr = setup_and_attach({ ghost_text = { debounce_ms = 60000 } })
  if diffill._state.native_ghost then
    return -- Neovim's own inline completion draws it
  end
  local ghost = require('diffill.ghost')
  vim.bo.autoindent = true
  vim.api.nvim_win_set_cursor(0, { vim.fn.search('GHOST_HERE', 'n'), 0 })
  type_keys('oreturn ')
  ask_until_ghost(bufnr, '<BS> ')
  local typed = 0
  for _ = 1, 6 do
    local a = ghost.answer(bufnr)
    local text = ghost.text(bufnr)
    check(a.shown == text, 'shown %q, the latest answer says %q', tostring(text), tostring(a.shown))
    local ch = text and text:match('^[^\n\t<][\128-\191]*') -- not <Tab>, which accepts, nor < (a key name)
    if not ch then
      break
    end
    type_keys(ch, 100)
    typed = typed + 1
    check(ghost.answer(bufnr).n == a.n, 'a request went out before the test asked')
    check((ghost.text(bufnr) or '') == text:sub(#ch + 1), 'after typing %q of %q the ghost shows %q, want the rest %q', ch, text, tostring(ghost.text(bufnr)), text:sub(#ch + 1))
    local b = ask(bufnr)
    check(b.shown == ghost.text(bufnr), 'after typing %q: shown %q, the answer (%d items) says %q', ch, tostring(ghost.text(bufnr)), #b.items, tostring(b.shown))
    check(b.shown ~= nil or #vim.api.nvim_buf_get_extmarks(bufnr, ghost.ns, 0, -1, {}) == 0, 'an extmark is left after an answer with nothing to show')
    log('typed %q: kept %q; the server answers %d item(s), shown %q', ch, text:sub(#ch + 1), #b.items, tostring(b.shown))
  end
  check(typed > 0, 'the ghost text has no character to type through')
end

-- :DiffillFillHoles replaces every hole marker, as one undo step.
scenarios.fill_holes = function()
  -- The fixture's holes are /*?*/ (the server's default marker is ???): this also proves settings reach the server.
  setup_and_attach({ holeMarker = '/*?*/' })
  local marker = '/*?*/'
  local count = select(2, buf_text():gsub(vim.pesc(marker), ''))
  check(count >= 2, 'fixture has %d holes, want 2 or more', count)
  local before = buf_text()
  local steps = run_command('DiffillFillHoles')
  local after = buf_text()
  check(not after:find(marker, 1, true), 'holes left after :DiffillFillHoles:\n%s', after)
  check(#steps > 0, 'no diffill/step notifications')
  log('filled:\n%s', after)
  vim.cmd('undo')
  check(buf_text() == before, 'one :undo did not restore the holes:\n%s', buf_text())
end

-- :'<,'>DiffillRewrite rewrites a charwise selection in place; :DiffillRewrite 0.5 on a line range with a strength.
scenarios.rewrite = function()
  local _, bufnr = setup_and_attach()
  local row = vim.fn.search('REWRITE_HERE', 'n')
  check(row > 0, 'fixture has no REWRITE_HERE line')
  local lines_before = vim.api.nvim_buf_line_count(bufnr)
  local before = buf_text()
  local target = vim.api.nvim_buf_get_lines(bufnr, row, row + 1, false)[1]
  -- Select the statement under the marker charwise: from its first non-blank to the end of the line.
  vim.api.nvim_win_set_cursor(0, { row + 1, 0 })
  type_keys('^v$h<Esc>', 100)
  local steps = run_command("'<,'>DiffillRewrite")
  check(#steps > 0, 'no diffill/step notifications')
  local last = steps[#steps]
  check(last.total > 0 and last.step <= last.total, 'bad step counts: %s', vim.inspect(last))
  log('rewrote %q -> %q', target, vim.api.nvim_buf_get_lines(bufnr, row, row + 1, false)[1] or '')
  -- Text outside the selection is untouched.
  local after = vim.api.nvim_buf_get_lines(bufnr, 0, row, false)
  check(table.concat(after, '\n') == table.concat(vim.split(before, '\n'), '\n', 1, row), 'lines above the selection changed')
  check(vim.api.nvim_buf_line_count(bufnr) >= lines_before - 1, 'the rewrite removed lines around the selection')
  -- The indentation before the selection stays.
  local indent = target:match('^%s*')
  local now = vim.api.nvim_buf_get_lines(bufnr, row, row + 1, false)[1]
  check(now:sub(1, #indent) == indent, 'indentation lost: %q', now)
  run_command(('%d,%dDiffillRewrite 0.5'):format(row + 1, row + 1))
end

-- :DiffillInfill on a selected range and at the cursor.
scenarios.infill = function()
  local _, bufnr = setup_and_attach()
  local row = vim.fn.search('INFILL_HERE', 'n')
  check(row > 0, 'fixture has no INFILL_HERE line')
  local above = vim.api.nvim_buf_get_lines(bufnr, 0, row, false)
  vim.api.nvim_win_set_cursor(0, { row + 1, 0 })
  local steps = run_command(('%d,%dDiffillInfill'):format(row + 1, row + 1))
  check(#steps > 0, 'no diffill/step notifications')
  check(table.concat(vim.api.nvim_buf_get_lines(bufnr, 0, row, false), '\n') == table.concat(above, '\n'), 'lines above the range changed')
  log('infilled line %d: %q', row + 1, vim.api.nvim_buf_get_lines(bufnr, row, row + 1, false)[1] or '')
  -- A stale version is refused by the server, never applied in the wrong place.
  local d = diffill._state
  check(d.busy == 0, 'busy count %d after the command', d.busy)
end

-- A buffer whose filetype is not in filetypes (a README.md beside the Go
-- code) is never attached nor edited: each command there says so in one line
-- and does nothing, and typing there shows no ghost text. A buffer whose
-- filetype changes to one not served is detached.
scenarios.non_go = function()
  local c = setup_and_attach()
  local ghost = require('diffill.ghost')
  local msgs = {}
  vim.notify = function(m, level)
    table.insert(msgs, { m, level })
  end
  local readme = vim.fn.expand('%:p:h') .. '/README.md'
  vim.fn.writefile({ '# Sum', '', 'Sum adds ??? the numbers.', '', '    total := Sum(xs)', '' }, readme)
  vim.cmd('edit ' .. vim.fn.fnameescape(readme))
  local md = vim.api.nvim_get_current_buf()
  check(vim.bo.filetype == 'markdown', 'README.md has filetype %q', vim.bo.filetype)
  local before = buf_text()
  vim.api.nvim_win_set_cursor(0, { 3, 9 })
  for _, ex in ipairs({ 'DiffillRewrite', '3,5DiffillRewrite 0.5', 'DiffillInfill', '3DiffillInfill', 'DiffillFillHoles' }) do
    local n = #msgs
    vim.cmd(ex)
    check(not c.attached_buffers[md], ':%s attached the markdown buffer', ex)
    check(#msgs == n + 1, ':%s said %d things, want one: %s', ex, #msgs - n, vim.inspect(msgs))
    local m = msgs[#msgs][1]
    check(m:find('markdown', 1, true) and m:find('nothing done', 1, true) and not m:find('\n') and vim.fn.strdisplaywidth(m) < vim.v.echospace, ':%s says %q', ex, m)
  end
  log('a command in README.md says: %s', msgs[#msgs][1])
  check(diffill._state.busy == 0 and next(diffill._state.running) == nil, 'a command is running on the markdown buffer')
  -- Typing there: no request, no ghost.
  type_keys('Gosum of ', 100)
  sleep(1500)
  check(not ghost.visible(md) and #vim.api.nvim_buf_get_extmarks(md, ghost.ns, 0, -1, {}) == 0, 'ghost text in the markdown buffer')
  type_keys('<Esc>', 100)
  vim.cmd('undo')
  check(buf_text() == before, 'the markdown buffer changed:\n%s', buf_text())
  -- The filetype set to go by hand: served; set back: detached.
  vim.cmd('setlocal filetype=go')
  wait('the buffer to attach once its filetype is go', 10000, function()
    return c.attached_buffers[md]
  end)
  vim.cmd('setlocal filetype=markdown')
  check(not c.attached_buffers[md], 'still attached after the filetype went back to markdown')
  check(c.attached_buffers[vim.fn.bufnr('a.go')], 'a.go was detached')
end

-- Records the workspace/executeCommand requests the plugin sends through c
-- (the real client; the requests still go to the server).
local function record_commands(c)
  local sent = {}
  local method_call = require('diffill.util').has('0.11') -- client:request(...) from 0.11
  local real = c.request
  c.request = function(...)
    local args = { ... }
    local method, params = args[method_call and 2 or 1], args[method_call and 3 or 2]
    if method == 'workspace/executeCommand' then
      table.insert(sent, vim.deepcopy(params))
    end
    return real(...)
  end
  return sent
end

-- Issue 11 item 1: whole-line :DiffillRewrite (no range) and line-wise
-- :'<,'>DiffillInfill on the lines DIFFILL_OPS names ("r47,i60": rewrite
-- line 47, infill line 60) of DIFFILL_GO_FILE. Each sends the whole line from
-- character 0, keeps its indentation and a statement on it, and leaves the
-- lines around alone; the file is written for the Go side to parse. Bottom
-- up, so that line numbers above stay valid.
scenarios.whole_line = function()
  local c = setup_and_attach()
  vim.cmd('edit ' .. vim.fn.fnameescape(assert(os.getenv('DIFFILL_GO_FILE'))))
  local bufnr = vim.api.nvim_get_current_buf()
  wait(vim.fn.expand('%:t') .. ' to attach', 10000, function()
    return c.attached_buffers[bufnr]
  end)
  local sent = record_commands(c)
  local ops = {}
  for kind, l in os.getenv('DIFFILL_OPS'):gmatch('([ri])(%d+)') do
    table.insert(ops, { kind = kind, line = tonumber(l) })
  end
  table.sort(ops, function(a, b)
    return a.line > b.line
  end)
  local problems = {}
  local function problem(fmt, ...)
    table.insert(problems, fmt:format(...))
  end
  for _, op in ipairs(ops) do
    local l = op.line
    local before = vim.api.nvim_buf_get_lines(bufnr, 0, -1, false)
    local orig = before[l]
    local indent = orig:match('^%s*')
    -- The cursor inside the line: the command still takes all of it.
    vim.api.nvim_win_set_cursor(0, { l, #indent + 1 })
    local ex
    if op.kind == 'r' then
      ex = 'DiffillRewrite'
    else
      vim.cmd('normal! V\27')
      check(vim.fn.visualmode() == 'V', 'visualmode %q', vim.fn.visualmode())
      ex = "'<,'>DiffillInfill"
    end
    local n = #sent
    run_command(ex)
    check(#sent == n + 1, ':%s sent %d commands', ex, #sent - n)
    local r = sent[#sent].arguments[1].range
    local want = { start = { line = l - 1, character = 0 }, ['end'] = { line = l - 1, character = #orig } }
    check(vim.deep_equal(r, want), ':%s on line %d sent the range %s, want the whole line %s', ex, l, vim.inspect(r), vim.inspect(want))
    local after = vim.api.nvim_buf_get_lines(bufnr, 0, -1, false)
    local delta = #after - #before
    for k = 1, l - 1 do
      if after[k] ~= before[k] then
        problem(':%s on line %d changed line %d above it: %q -> %q', ex, l, k, before[k], tostring(after[k]))
        break
      end
    end
    for k = l + 1, #before do
      if after[k + delta] ~= before[k] then
        problem(':%s on line %d changed line %d below it: %q -> %q', ex, l, k, before[k], tostring(after[k + delta]))
        break
      end
    end
    local new = {}
    for k = l, l + delta do
      table.insert(new, after[k])
    end
    local first = new[1] or ''
    if first:sub(1, #indent) ~= indent or first:sub(#indent + 1):match('^%s') or first:match('^%s*$') then
      problem(':%s on line %d lost its indentation or statement: %q -> %q', ex, l, orig, table.concat(new, '⏎'))
    end
    log('%s line %d: %q -> %q', ex, l, orig, table.concat(new, '⏎'))
  end
  vim.cmd('write')
  check(#problems == 0, '%d of %d whole-line commands broke the code:\n%s', #problems, #ops, table.concat(problems, '\n'))
end

-- Whether the Go text s has as many closers as openers of each pair whose
-- closer is in pairs, outside string and rune literals, and ends outside any
-- literal: a scan, so that "(" in a string does not count.
local function balanced(s, closers)
  local open_of = { [')'] = '(', [']'] = '[', ['}'] = '{' }
  local depth = { ['('] = 0, ['['] = 0, ['{'] = 0 }
  local quote, k = nil, 1
  while k <= #s do
    local ch = s:sub(k, k)
    if quote then
      if ch == '\\' and quote ~= '`' then
        k = k + 1
      elseif ch == quote then
        quote = nil
      end
    elseif ch == '"' or ch == '`' or ch == "'" then
      quote = ch
    elseif depth[ch] then
      depth[ch] = depth[ch] + 1
    elseif open_of[ch] then
      depth[open_of[ch]] = depth[open_of[ch]] - 1
    end
    k = k + 1
  end
  for cl, op in pairs(open_of) do
    if closers:find(cl, 1, true) and depth[op] ~= 0 then
      return false, ('%d more %s than %s'):format(depth[op], op, cl)
    end
  end
  if quote and closers:find(quote, 1, true) then
    return false, 'a ' .. quote .. ' left open'
  end
  return true
end

-- Issue 11 item 2: with autopairs-like mappings (an opener types its closer
-- too, a closer typed before the same closer steps over it), the ghost text
-- inside an auto-closed (, [, { or " replaces the closers the editor typed:
-- accepting it applies the item exactly and leaves those brackets balanced.
scenarios.autopairs = function()
  local _, bufnr = setup_and_attach({ ghost_text = { debounce_ms = 60000 } })
  if diffill._state.native_ghost then
    log('Neovim draws and accepts the ghost text itself here; nothing of the plugin to check')
    return
  end
  local ghost = require('diffill.ghost')
  local function next_char()
    return vim.api.nvim_get_current_line():sub(vim.fn.col('.'), vim.fn.col('.'))
  end
  for open, close in pairs({ ['('] = ')', ['['] = ']', ['{'] = '}', ['"'] = '"' }) do
    if open ~= close then
      vim.keymap.set('i', open, open .. close .. '<Left>')
    end
    vim.keymap.set('i', close, function()
      if next_char() == close then
        return '<Right>'
      end
      return open == close and (close .. close .. '<Left>') or close
    end, { expr = true })
  end
  vim.bo.autoindent = true
  local orig = vim.api.nvim_buf_get_lines(bufnr, 0, -1, false)
  local row = vim.fn.search('GHOST_HERE', 'n')
  local problems = {}
  for _, case in ipairs({
    { typed = 'if len(', open = '(', close = ')' },
    { typed = 'first := xs[', open = '[', close = ']' },
    { typed = 'ys := []int{', open = '{', close = '}' },
    { typed = 'fmt.Println("', open = '"', close = '"' },
  }) do
    -- Accepted at once, and after typing the ghost's first character (which the plugin follows itself: no request
    -- goes out in between), when it has one that is no bracket or quote (those step over or pair).
    for _, through in ipairs({ false, true }) do
      vim.api.nvim_buf_set_lines(bufnr, 0, -1, false, orig)
      vim.api.nvim_win_set_cursor(0, { row, 0 })
      type_keys('o' .. case.typed, 100)
      local line = vim.api.nvim_get_current_line()
      local col = vim.api.nvim_win_get_cursor(0)[2]
      local closers = line:sub(col + 1)
      check(closers:sub(1, 1) == case.close, 'the mapping did not close %s: %q', case.open, line)
      ask_until_ghost(bufnr, 'x<BS>')
      local g = ghost.state(bufnr)
      local ch = g.lines[1]:match('^[%w_.,:= ]')
      if through and ch and #g.lines[1] > 1 then
        type_keys(ch, 100)
        check(ghost.visible(bufnr), 'typing %q, the ghost\'s first character, dismissed %q', ch, g.text)
      end
      local nlines = #vim.split(g.text, '\n', { plain = true })
      type_keys('<Tab>', 200)
      local got = table.concat(vim.api.nvim_buf_get_lines(bufnr, row, row + nlines, false), '\n')
      local want = line:sub(1, g.start_col) .. g.text .. line:sub(g.end_col + 1)
      check(got == want, 'accepting %q in %q%s gave %q, want the item applied exactly: %q', g.text, line, through and (' after typing ' .. tostring(ch)) or '', got, want)
      local ok, why = balanced(got, closers)
      local what = ('%q + ghost %q%s (replacing %d of the %d characters after the cursor) -> %q%s'):format(line, g.text,
        through and (' typed through ' .. tostring(ch)) or '', g.end_col - g.col, #closers, got, ok and '' or (': ' .. why))
      log('%s', what)
      if not ok then
        table.insert(problems, what)
      end
      type_keys('<Esc>', 100)
    end
  end
  check(#problems == 0, 'accepting the ghost text left a closer the editor typed:\n%s', table.concat(problems, '\n'))
end

-- :checkhealth diffill reports binary, model, device and server state.
scenarios.health = function()
  setup_and_attach()
  vim.cmd('checkhealth diffill')
  local text = buf_text()
  log('%s', text)
  local m = os.getenv('DIFFILL_TEST_MODEL') or ''
  local model = m ~= '' and ('model: ' .. m) or 'model: built-in'
  for _, want in ipairs({ 'binary: ' .. os.getenv('DIFFILL_BIN'), model, 'device: cpu', 'server: running', 'server offers inline completion', 'diffill.fillHoles' }) do
    check(text:find(want, 1, true), ':checkhealth diffill does not say %q', want)
  end
  check(not text:find('ERROR', 1, true), ':checkhealth diffill reports an error')
end

-- With a missing binary, setup() says so once, in one line that points at
-- :checkhealth diffill, which says what to do; opening more Go buffers says
-- nothing more, and a command says why it does nothing.
scenarios.missing_binary = function()
  vim.cmd('filetype on')
  vim.cmd('filetype detect')
  local msgs = {}
  vim.notify = function(m, level)
    table.insert(msgs, { m, level })
  end
  diffill = require('diffill')
  diffill.setup({ path = '/nonexistent/diffill' })
  sleep(100) -- the message is scheduled after startup
  check(#msgs == 1 and msgs[1][1]:find('/nonexistent/diffill', 1, true) and msgs[1][1]:find(':checkhealth diffill', 1, true), 'want one message naming the path and :checkhealth diffill: %s', vim.inspect(msgs))
  check(not msgs[1][1]:find('\n') and vim.fn.strdisplaywidth(msgs[1][1]) < vim.v.echospace, 'the message does not fit one line (%d cells): %q', vim.fn.strdisplaywidth(msgs[1][1]), msgs[1][1])
  check(msgs[1][2] == vim.log.levels.ERROR, 'message level %s, want ERROR', tostring(msgs[1][2]))
  check(diffill.client() == nil, 'a client started without a binary')
  vim.cmd('edit ' .. vim.fn.fnameescape(vim.fn.expand('%:p:h') .. '/b.go'))
  check(vim.bo.filetype == 'go', 'b.go has filetype %q', vim.bo.filetype)
  vim.cmd('edit #')
  sleep(100)
  check(#msgs == 1, 'opening Go buffers repeated the message: %s', vim.inspect(msgs))
  vim.cmd('DiffillInfill')
  sleep(100)
  check(#msgs == 2 and msgs[2][1]:find('no binary', 1, true), 'a command without a binary says nothing clear: %s', vim.inspect(msgs))
  vim.cmd('checkhealth diffill')
  local text = buf_text()
  check(text:find('ERROR', 1, true) and text:find('go install ./cmd/diffill', 1, true) and not text:find('@latest', 1, true), 'health check does not report the missing binary:\n%s', text)
  log('%s', text)
end

-- A server that exits at once (here: an unknown flag) is reported once and
-- not restarted for every Go buffer that opens; a command tries again, and
-- says it failed.
scenarios.server_fails = function()
  vim.cmd('filetype on')
  vim.cmd('filetype detect')
  local msgs = {}
  vim.notify = function(m, level)
    -- Neovim 0.7 says "Client 1 quit with exit code 2" itself; the plugin's own messages are counted.
    if m:find('^diffill:') then
      table.insert(msgs, { m, level })
    end
  end
  local starts = 0
  for _, f in ipairs({ 'start', 'start_client' }) do
    local real = vim.lsp[f]
    if real then
      vim.lsp[f] = function(...)
        starts = starts + 1
        return real(...)
      end
    end
  end
  diffill = require('diffill')
  diffill.setup({ path = os.getenv('DIFFILL_BIN'), args = { '--no-such-flag' } })
  wait('the failure to be reported', SLOW, function()
    return #msgs > 0
  end)
  check(#msgs == 1 and msgs[1][1]:find('exited with code', 1, true) and msgs[1][1]:find(':checkhealth diffill', 1, true), 'report: %s', vim.inspect(msgs))
  check(starts == 1, '%d starts at setup, want 1', starts)
  vim.cmd('edit ' .. vim.fn.fnameescape(vim.fn.expand('%:p:h') .. '/b.go'))
  vim.cmd('edit #')
  sleep(1500)
  check(starts == 1, 'opening Go buffers restarted the failing server: %d starts', starts)
  check(#msgs == 1, 'more messages after opening Go buffers: %s', vim.inspect(msgs))
  vim.cmd('DiffillInfill')
  wait('the command to report the failure', SLOW, function()
    return #msgs > 1
  end)
  check(starts == 2, 'a command did not try again: %d starts', starts)
  check(msgs[2][1]:find('exited with code', 1, true), 'the command says: %s', vim.inspect(msgs))
  check(diffill._state.busy == 0 and next(diffill._state.running) == nil, 'the command is left running: busy %d', diffill._state.busy)
end

-- The plugin's own logic, no server: settings mapping, binary discovery,
-- command ranges (charwise, linewise, multibyte), ghost text from an item.
scenarios.unit = function()
  local config = require('diffill.config')
  local util = require('diffill.util')
  local ghost = require('diffill.ghost')

  -- Settings: every key sent, null when unset; bad values dropped with a message.
  local s, problems = config.server_settings(config.merge({ steps = 8, temperature = 0, model = '~/m/dream/', sampler = 'margin' }))
  check(#problems == 0, 'problems: %s', vim.inspect(problems))
  check(s.steps == 8 and s.temperature == 0 and s.sampler == 'margin', 'settings: %s', vim.inspect(s))
  check(s.model == vim.loop.os_homedir() .. '/m/dream/', 'model not expanded: %s', s.model)
  check(s.device == vim.NIL and s.maxTokens == vim.NIL and s.holeMarker == vim.NIL, 'unset keys must be null: %s', vim.inspect(s))
  check(vim.fn.json_encode(s):find('"device": *null'), 'null not encoded: %s', vim.fn.json_encode(s))
  check(config.model_label(s) == 'dream', 'model label %q', config.model_label(s))
  s, problems = config.server_settings(config.merge({ settings = { diffill = { steps = -1, sampler = 'greedy', device = 'tpu', holeMarker = 3, debounce = '50' } } }))
  check(#problems == 4, 'want 4 problems, got %s', vim.inspect(problems))
  check(s.steps == vim.NIL and s.debounce == 50, 'settings: %s', vim.inspect(s))
  s, problems = config.server_settings(config.merge({ device = 'auto' }))
  check(#problems == 0 and s.device == 'auto', 'device = "auto" (the server\'s default) refused: %s', vim.inspect(problems))
  local merged = config.merge({ ghost_text = { accept = '<C-l>' } })
  check(merged.ghost_text.accept == '<C-l>' and merged.ghost_text.enabled == true, 'deep merge lost defaults: %s', vim.inspect(merged.ghost_text))

  -- Binary discovery: path option, PATH, go install dir, and a clear message.
  local function env(files, vars)
    return {
      executable = function(p)
        return files[p] ~= nil
      end,
      exepath = function(p)
        return files[p] or ''
      end,
      getenv = function(k)
        return (vars or {})[k]
      end,
      home = '/home/u',
    }
  end
  check(config.find_binary({ path = '/opt/diffill' }, env({ ['/opt/diffill'] = '/opt/diffill' })) == '/opt/diffill', 'path option')
  check(config.find_binary({}, env({ diffill = '/usr/bin/diffill' })) == '/usr/bin/diffill', 'PATH')
  check(config.find_binary({}, env({ ['/home/u/go/bin/diffill'] = '' })) == '/home/u/go/bin/diffill', '~/go/bin')
  check(config.find_binary({}, env({ ['/g/bin/diffill'] = '' }, { GOPATH = '/g:/h' })) == '/g/bin/diffill', 'GOPATH')
  local bin, why = config.find_binary({}, env({}, { GOBIN = '/gb' }))
  check(bin == nil and why:find('/gb', 1, true) and why:find('go install ./cmd/diffill', 1, true), 'message: %s', why)
  bin, why = config.find_binary({ path = '/nope' }, env({ diffill = '/usr/bin/diffill' }))
  check(bin == nil and why:find('/nope', 1, true), 'a wrong path option must not fall back to PATH: %s', tostring(why))

  -- Command ranges: linewise ends at the end of the last line; charwise includes the last (multibyte) character.
  local b = vim.api.nvim_create_buf(true, false)
  vim.api.nvim_set_current_buf(b)
  vim.api.nvim_buf_set_lines(b, 0, -1, false, { 'x := "héllo" // 😀 ok', '\treturn x', '' })
  local r = util.command_range(b, { range = 2, line1 = 1, line2 = 2 }, 'utf-16')
  check(vim.deep_equal(r, { start = { line = 0, character = 0 }, ['end'] = { line = 1, character = 9 } }), 'linewise: %s', vim.inspect(r))
  check(util.command_range(b, { range = 0 }, 'utf-16') == nil, 'no range must be nil')
  -- Select from "h" of héllo to the emoji, charwise.
  vim.api.nvim_win_set_cursor(0, { 1, 6 })
  vim.cmd('normal! v')
  vim.api.nvim_win_set_cursor(0, { 1, 19 })
  vim.cmd('normal! \27')
  check(vim.fn.visualmode() == 'v', 'visualmode %q', vim.fn.visualmode())
  r = util.command_range(b, { range = 2, line1 = 1, line2 = 1 }, 'utf-16')
  -- Bytes: h is 6, é is 7-8, the emoji is 17-20 (the cursor snapped to its start): 16 UTF-16 units before it, 2 for it.
  check(vim.deep_equal(r, { start = { line = 0, character = 6 }, ['end'] = { line = 0, character = 18 } }), 'charwise utf-16: %s', vim.inspect(r))
  r = util.command_range(b, { range = 2, line1 = 1, line2 = 1 }, 'utf-8')
  check(r['end'].character == 21, 'charwise utf-8 end %d, want 21', r['end'].character)
  check(util.to_col(b, 0, 18, 'utf-16') == 21 and util.to_col(b, 0, 8, 'utf-16') == 9 and util.to_col(b, 0, 99, 'utf-16') == #vim.api.nvim_buf_get_lines(b, 0, 1, false)[1], 'to_col')

  -- Ghost text from an inline completion item: what is already typed is not shown again.
  vim.api.nvim_buf_set_lines(b, 0, -1, false, { '\treturn to' })
  local g = ghost.ghost_from_item(b, { insertText = 'return total', range = { start = { line = 0, character = 1 }, ['end'] = { line = 0, character = 10 } } }, 0, 10, 'utf-16')
  check(g and g.lines[1] == 'tal' and g.start_col == 1 and g.end_col == 10, 'ghost: %s', vim.inspect(g))
  g = ghost.ghost_from_item(b, { insertText = 'tal + 1\n\t}' }, 0, 10, 'utf-16')
  check(g and #g.lines == 2 and g.lines[2] == '\t}', 'multi-line ghost: %s', vim.inspect(g))
  check(ghost.ghost_from_item(b, { insertText = 'x := 1', range = { start = { line = 0, character = 1 }, ['end'] = { line = 0, character = 10 } } }, 0, 10, 'utf-16') == nil, 'an item that does not match the typed text must not show')
  check(ghost.ghost_from_item(b, { insertText = '' }, 0, 10, 'utf-16') == nil, 'empty item')

  -- Messages are cut to the command line's width on character boundaries (a longer one would stop at a hit-enter prompt).
  local fit = require('diffill')._fit
  check(fit('héllo wörld', 5) == 'héll…', 'fit: %q', fit('héllo wörld', 5))
  check(fit('short', 10) == 'short', 'fit short')
  check(vim.fn.strdisplaywidth(fit(('😀'):rep(10), 7)) <= 7, 'fit wide chars: %q', fit(('😀'):rep(10), 7))

  -- diffill/step in the server's shape and in issue 5's.
  local range = { start = { line = 3, character = 1 }, ['end'] = { line = 4, character = 0 } }
  local p = require('diffill')._parse_step({ textDocument = { uri = 'file:///a.go', version = 2 }, command = 'diffill.fillHoles', done = 3, total = 8, spans = { { range = range, text = 'a' }, { range = range, text = 'b' } } })
  check(p and p.uri == 'file:///a.go' and p.step == 3 and p.total == 8 and p.text == 'a … b' and #p.spans == 2, 'server step: %s', vim.inspect(p))
  p = require('diffill')._parse_step({ uri = 'file:///a.go', step = 1, total = 4, text = 'x' })
  check(p and p.step == 1 and p.text == 'x', 'issue step: %s', vim.inspect(p))
  check(require('diffill')._parse_step({ step = 1 }) == nil, 'junk step must be nil')
end

-- A Neovim in a terminal buffer of this one, running test/screen_inner.lua
-- on file: what a user sees is that terminal's text. env adds to the inner
-- Neovim's environment (DIFFILL_INNER_OPTS: JSON setup() options).
local function terminal(file, env)
  local state_file = os.getenv('DIFFILL_RESULT') .. '.state'
  local here = debug.getinfo(1, 'S').source:sub(2):match('(.*)/test/')
  vim.o.columns, vim.o.lines = 90, 28
  vim.cmd('enew')
  local job = vim.fn.termopen({
    vim.v.progpath, '-u', 'NONE', '-i', 'NONE', '-n', '--cmd', 'set rtp^=' .. here,
    '-c', 'luafile ' .. here .. '/test/screen_inner.lua', file,
  }, {
    env = vim.tbl_extend('force', {
      DIFFILL_SCREEN_STATE = state_file,
      DIFFILL_BIN = os.getenv('DIFFILL_BIN'),
      DIFFILL_TEST_MODEL = os.getenv('DIFFILL_TEST_MODEL') or '',
    }, env or {}),
  })
  check(job > 0, 'termopen failed')
  local t = { job = job, buf = vim.api.nvim_get_current_buf() }
  -- The inner state: its first line ("ready ghost done=1") and the JSON details after it.
  function t.state()
    local f = io.open(state_file)
    if not f then
      return '', {}
    end
    local s = f:read('*a')
    f:close()
    local first, rest = s:match('^([^\n]*)\n?(.*)$')
    local ok, detail = pcall(vim.fn.json_decode, rest)
    return first or '', ok and type(detail) == 'table' and detail or {}
  end
  -- The screen's lines, trailing blanks cut.
  function t.screen()
    local lines = vim.api.nvim_buf_get_lines(t.buf, 0, -1, false)
    for k, l in ipairs(lines) do
      lines[k] = l:gsub('%s+$', '')
    end
    while #lines > 0 and lines[#lines] == '' do
      table.remove(lines)
    end
    return lines
  end
  function t.capture(title)
    sleep(300) -- let the inner Neovim redraw
    return ('--- %s ---\n%s'):format(title, table.concat(t.screen(), '\n'))
  end
  -- Keys as a terminal sends them: Neovim's own code for <BS> (0x80 k b) is no terminal's.
  function t.send(keys)
    vim.fn.chansend(job, vim.api.nvim_replace_termcodes(keys:gsub('<BS>', '\127'), true, false, true))
    sleep(150)
  end
  -- Types keys until the inner Neovim shows ghost text (the server may answer nothing at first).
  function t.wait_ghost(nudge)
    local deadline = vim.loop.now() + SLOW
    while not t.state():match(' ghost ') do
      check(vim.loop.now() < deadline, 'no ghost text on the inner screen:\n%s', table.concat(t.screen(), '\n'))
      sleep(500)
      if not t.state():match(' ghost ') then
        t.send(nudge)
      end
    end
  end
  return t
end

-- Not a check of its own: runs the plugin in a Neovim inside a terminal
-- buffer and captures that screen as text (ghost text shown, accepted, holes
-- filled), for people to read. The screens go to DIFFILL_SCREEN_OUT.
scenarios.screen = function()
  local out = assert(os.getenv('DIFFILL_SCREEN_OUT'))
  local t = terminal(vim.api.nvim_buf_get_name(0))
  local screens = {}
  wait('the inner Neovim to start the server', SLOW, function()
    return t.state():match('^ready')
  end)
  t.send(':call search("GHOST_HERE")<CR>')
  t.send('o')
  t.send('return ')
  t.wait_ghost('<BS> ')
  table.insert(screens, t.capture('1. typing "return " in insert mode: ghost text (grey) after the cursor'))
  t.send('<Tab>')
  table.insert(screens, t.capture('2. after <Tab>: the ghost text is in the buffer'))
  t.send('<Esc>')
  t.send(':DiffillFillHoles<CR>')
  local ok, err = pcall(wait, ':DiffillFillHoles to finish', SLOW, function()
    return t.state():match('done=1')
  end)
  if not ok then
    error(('%s; state %q; the screen:\n%s'):format(err, t.state(), table.concat(t.screen(), '\n')))
  end
  t.send('gg')
  table.insert(screens, t.capture('3. after :DiffillFillHoles: the holes are filled'))
  local f = assert(io.open(out, 'w'))
  f:write(table.concat(screens, '\n\n'), '\n')
  f:close()
  t.send('<Esc>:qa!<CR>')
end

-- A missing binary, as a user meets it in a terminal: Neovim starts into the
-- file, not into a hit-enter prompt, with one line saying where to look;
-- opening another Go buffer says nothing more.
scenarios.missing_binary_screen = function()
  local dir = vim.fn.expand('%:p:h')
  local t = terminal(vim.api.nvim_buf_get_name(0), { DIFFILL_BIN = '/nonexistent/diffill' })
  wait('the inner Neovim to start', SLOW, function()
    -- A hit-enter prompt would hold it before its state file is written.
    return t.state() ~= '' or table.concat(t.screen(), '\n'):find('Press ENTER', 1, true)
  end)
  sleep(1000) -- anything said at startup is on the screen by now
  local function no_prompt(when)
    local screen = t.screen()
    local all = table.concat(screen, '\n')
    check(not all:find('Press ENTER', 1, true), '%s: a hit-enter prompt:\n%s', when, all)
    local _, detail = t.state()
    local said = select(2, ('\n' .. (detail.messages or '')):gsub('\ndiffill:', ''))
    return screen, detail, said
  end
  local screen, detail, said = no_prompt('at startup')
  check(detail.mode == 'n', 'at startup the inner Neovim is in mode %q, not normal mode', tostring(detail.mode))
  check(screen[#screen]:find('diffill: no binary', 1, true), 'the command line does not say the binary is missing:\n%s', table.concat(screen, '\n'))
  check(said == 1, 'said %d times at startup: %s', said, detail.messages)
  log('%s', t.capture('startup with a missing binary'))
  t.send(':edit ' .. dir .. '/b.go<CR>')
  t.send(':edit #<CR>')
  sleep(500)
  screen, detail, said = no_prompt('after opening two more Go buffers')
  check(said == 1, 'said %d times after opening Go buffers: %s', said, detail.messages)
  t.send(':DiffillRewrite<CR>')
  sleep(500)
  screen, detail, said = no_prompt('after :DiffillRewrite')
  check(said == 2 and screen[#screen]:find('diffill: no binary', 1, true), ':DiffillRewrite does not say why it did nothing (%d messages):\n%s', said, table.concat(screen, '\n'))
  log('%s', t.capture('after :DiffillRewrite'))
  t.send('<Esc>:qa!<CR>')
end

-- A binary that cannot be spawned (its interpreter is missing, though it is
-- executable) is tried once, reported once, and not for every buffer.
scenarios.spawn_fails = function()
  vim.cmd('filetype on')
  vim.cmd('filetype detect')
  local msgs = {}
  vim.notify = function(m, level)
    if m:find('^diffill:') then
      table.insert(msgs, { m, level })
    end
  end
  local starts = 0
  for _, f in ipairs({ 'start', 'start_client' }) do
    local real = vim.lsp[f]
    if real then
      vim.lsp[f] = function(...)
        starts = starts + 1
        return real(...)
      end
    end
  end
  local bin = vim.fn.expand('%:p:h') .. '/diffill'
  vim.fn.writefile({ '#!/nonexistent/interpreter', '' }, bin)
  vim.fn.setfperm(bin, 'rwxr-xr-x')
  diffill = require('diffill')
  diffill.setup({ path = bin })
  sleep(300)
  check(starts == 1, '%d starts at setup, want 1', starts)
  check(#msgs == 1 and msgs[1][1]:find(':checkhealth diffill', 1, true), 'report: %s', vim.inspect(msgs))
  vim.cmd('edit ' .. vim.fn.fnameescape(vim.fn.expand('%:p:h') .. '/b.go'))
  vim.cmd('edit #')
  sleep(300)
  check(starts == 1, 'opening Go buffers tried again: %d starts', starts)
  check(#msgs == 1, 'more messages after opening Go buffers: %s', vim.inspect(msgs))
  vim.cmd('checkhealth diffill')
  check(buf_text():find('could not start', 1, true), ':checkhealth diffill does not say the start failed:\n%s', buf_text())
end

-- The same in a terminal: a server that exits at once gives no hit-enter
-- prompt, at startup or when more Go buffers open.
scenarios.server_fails_screen = function()
  local dir = vim.fn.expand('%:p:h')
  local t = terminal(vim.api.nvim_buf_get_name(0), { DIFFILL_INNER_OPTS = vim.fn.json_encode({ args = { '--no-such-flag' } }) })
  local function prompt()
    return table.concat(t.screen(), '\n'):find('Press ENTER', 1, true)
  end
  wait('the failure to be reported', SLOW, function()
    local _, detail = t.state()
    return prompt() or (detail.messages or ''):find('exited with code', 1, true)
  end)
  sleep(1000)
  check(not prompt(), 'a hit-enter prompt:\n%s', table.concat(t.screen(), '\n'))
  t.send(':edit ' .. dir .. '/b.go<CR>')
  t.send(':edit #<CR>')
  sleep(1500)
  check(not prompt(), 'a hit-enter prompt after opening Go buffers:\n%s', table.concat(t.screen(), '\n'))
  local _, detail = t.state()
  local said = select(2, ('\n' .. (detail.messages or '')):gsub('\ndiffill:', ''))
  check(said == 1, 'said %d times: %s', said, detail.messages)
  log('%s', t.capture('a server that exits at once'))
  t.send('<Esc>:qa!<CR>')
end

-- Display columns of s drawn from screen column start (0-based, in the text
-- area), tabs to 'tabstop' 8 as the inner Neovim draws them: the cells.
local function expand_tabs(s, start)
  local out, colnr = {}, start
  for ch in s:gmatch('[%z\1-\127\194-\244][\128-\191]*') do
    if ch == '\t' then
      local n = 8 - colnr % 8
      table.insert(out, (' '):rep(n))
      colnr = colnr + n
    else
      table.insert(out, ch)
      colnr = colnr + vim.fn.strdisplaywidth(ch)
    end
  end
  return table.concat(out), colnr
end

-- Mid-line ghost text, as drawn on Neovim's screen: it sits at the cursor,
-- and the rest of the line (from the end of the item's range) follows it, as
-- accepting will leave the line; nothing of the line is hidden or repeated.
scenarios.ghost_midline = function()
  local t = terminal(vim.api.nvim_buf_get_name(0))
  wait('the inner Neovim to start the server', SLOW, function()
    return t.state():match('^ready')
  end)
  t.send(':call search("GHOST_HERE")<CR>')
  t.send('ototal = max(total, 0)<Esc>')
  t.send('0f(a')
  t.wait_ghost('x<BS>')
  local _, d = t.state()
  local g = d.ghost
  check(type(g) == 'table' and d.mode == 'i', 'no ghost state: %s', vim.inspect(d))
  local line, col = d.line, d.cursor[2]
  check(g.row == d.cursor[1] - 1 and g.col == col and col < #line, 'the ghost is not mid-line at the cursor: %s, line %q', vim.inspect(g), line)
  log('line %q, cursor at byte %d, ghost %s', line, col, vim.inspect(g.lines))
  local shot = t.capture('mid-line ghost text')
  log('%s', shot)
  -- The screen row of the cursor line: its number, then the text.
  local screen = t.screen()
  local lnum = d.cursor[1]
  local at
  for k, l in ipairs(screen) do
    if l:match('^%s*' .. lnum .. ' ') then
      at = k
      break
    end
  end
  check(at, 'line %d is not on the screen:\n%s', lnum, shot)
  local width = #screen[at]:match('^%s*%d+ ')
  local function text_of(k)
    return (screen[k] or ''):sub(width + 1)
  end
  local after = line:sub(math.max(g.end_col, col) + 1)
  local prefix, c0 = expand_tabs(line:sub(1, col), 0)
  local want
  if #g.lines == 1 then
    want = prefix .. expand_tabs(g.lines[1] .. after, c0)
  else
    want = prefix .. expand_tabs(g.lines[1], c0)
  end
  want = want:gsub('%s+$', '')
  local cols = 90 - width
  local got = text_of(at)
  check(got == want:sub(1, cols), 'the cursor line reads\n  %q\nwant the ghost at the cursor and then the rest of the line:\n  %q\nscreen:\n%s', got, want, shot)
  if #g.lines > 1 then
    -- The rest of the line follows the ghost's last line, below.
    local last = screen[at + #g.lines - 1] or ''
    local tail = (g.lines[#g.lines] .. after):gsub('%s+', ' '):gsub('^ ', ''):gsub(' $', '')
    check(last:gsub('%s+', ' '):find(tail, 1, true), 'the ghost\'s last line %q does not end with the rest of the line %q:\n%s', last, after, shot)
  end
  -- <Tab> makes the line read as it was drawn.
  t.send('<Tab>')
  sleep(300)
  local _, d2 = t.state()
  local accepted = d2.line
  if #g.lines == 1 then
    check(accepted == line:sub(1, g.start_col) .. g.text .. after, '<Tab> left %q, drawn was %q', accepted, want)
  else
    check(vim.endswith(accepted, g.lines[#g.lines] .. after), '<Tab> left %q as the last line', accepted)
  end
  log('%s', t.capture('after <Tab>'))
  t.send('<Esc>:qa!<CR>')
end

local scenario = scenarios[name]
if not scenario then
  finish(false, 'unknown scenario ' .. name)
else
  co = coroutine.create(scenario)
  vim.schedule(resume)
end
