-- diffill for Neovim: starts `diffill serve` for the filetypes you choose,
-- shows ghost text, and adds :DiffillInfill, :DiffillRewrite and
-- :DiffillFillHoles. Neovim 0.7 (Debian 12's) is the oldest supported: it uses
-- vim.lsp.start_client + buf_attach_client there and vim.lsp.start on 0.8+.
local config = require('diffill.config')
local ghost = require('diffill.ghost')
local util = require('diffill.util')

-- vim.uv from 0.10, vim.loop before.
local uv = vim.uv or vim.loop

local M = {}

-- What this Neovim session knows; read by :checkhealth diffill and statusline().
local S = {
  opts = nil,
  settings = {},
  problems = {},
  binary = nil,
  binary_error = nil,
  client_id = nil,
  busy = 0,
  step = nil, -- { step, total, text } of the latest diffill/step
  progress = nil, -- latest $/progress message
  last_error = nil,
  running = {}, -- uri -> { bufnr, extmark row } of a command in flight
  native_ghost = false,
}
M._state = S

local step_ns = vim.api.nvim_create_namespace('diffill_step')

local function notify(msg, level)
  vim.notify('diffill: ' .. msg, level or vim.log.levels.INFO)
end

-- Cuts s to at most width display cells, on a character boundary.
local function fit(s, width)
  if vim.fn.strdisplaywidth(s) <= width then
    return s
  end
  local n = vim.fn.strchars(s)
  local lo, hi = 0, n
  while lo < hi do
    local mid = math.floor((lo + hi + 1) / 2)
    if vim.fn.strdisplaywidth(vim.fn.strcharpart(s, 0, mid)) <= width - 1 then
      lo = mid
    else
      hi = mid - 1
    end
  end
  return vim.fn.strcharpart(s, 0, lo) .. '…'
end
M._fit = fit

local function echo(msg)
  if S.opts and S.opts.progress then
    -- One line that fits the command line: a longer one would stop Neovim at a hit-enter prompt.
    msg = fit('diffill: ' .. msg:gsub('[%c]', ' '), math.max(10, (vim.v.echospace or vim.o.columns - 12) - 1))
    vim.api.nvim_echo({ { msg, 'Comment' } }, false, {})
  end
end

-- Says msg in one line that fits the command line: a longer one would stop
-- Neovim at a hit-enter prompt. The whole text is in :checkhealth diffill.
local function say(msg, level)
  notify(fit(msg, math.max(20, (vim.v.echospace or vim.o.columns - 12) - 10)), level)
end

-- say(), at most once per message in a session, after the current command or
-- startup (several lines at startup would also stop at a hit-enter prompt).
local function report_once(msg, level)
  S.reported = S.reported or {}
  if S.reported[msg] then
    return
  end
  S.reported[msg] = true
  vim.schedule(function()
    say(msg, level)
  end)
end

local function one_line(text)
  return (text:gsub('\r?\n[\t ]*', ' ⏎ '):gsub('\t', ' '))
end

-- Reads diffill/step: the server sends {textDocument = {uri, version}, command,
-- done, total, spans = {{range, text}}}; issue 5's {uri, text?, step, total} is read too.
local function parse_step(p)
  if type(p) ~= 'table' then
    return nil
  end
  if type(p.textDocument) == 'table' and type(p.done) == 'number' then
    local texts = {}
    for _, sp in ipairs(type(p.spans) == 'table' and p.spans or {}) do
      table.insert(texts, sp.text or '')
    end
    return { uri = p.textDocument.uri, step = p.done, total = p.total or 0, spans = p.spans or {}, text = #texts > 0 and table.concat(texts, ' … ') or nil }
  end
  if type(p.uri) == 'string' and type(p.step) == 'number' then
    return { uri = p.uri, step = p.step, total = p.total or 0, spans = {}, text = type(p.text) == 'string' and p.text or nil }
  end
  return nil
end
M._parse_step = parse_step

-- The forming text of a running command: under each span, and in the command line.
local function on_step(_, params)
  local p = parse_step(params)
  if not p then
    return
  end
  S.step = { step = p.step, total = p.total, text = p.text }
  local run = p.uri and S.running[p.uri]
  if not run then
    return
  end
  vim.api.nvim_exec_autocmds('User', { pattern = 'DiffillStep', modeline = false })
  local msg = ('step %d/%d'):format(p.step, p.total)
  if p.text and p.text ~= '' then
    msg = msg .. ': ' .. one_line(p.text)
  end
  if vim.api.nvim_buf_is_valid(run.bufnr) then
    vim.api.nvim_buf_clear_namespace(run.bufnr, step_ns, 0, -1)
    local where = {}
    for _, sp in ipairs(p.spans) do
      if type(sp.range) == 'table' and type(sp.text) == 'string' then
        table.insert(where, { row = sp.range['end'].line, text = sp.text })
      end
    end
    if #where == 0 and run.row and p.text then
      where = { { row = run.row, text = p.text } }
    end
    local last = vim.api.nvim_buf_line_count(run.bufnr) - 1
    for _, w in ipairs(where) do
      local lines = {}
      for _, l in ipairs(vim.split(w.text, '\n', { plain = true })) do
        table.insert(lines, { { '│ ' .. l, 'DiffillStep' } })
      end
      pcall(vim.api.nvim_buf_set_extmark, run.bufnr, step_ns, math.min(w.row, last), 0, {
        virt_text = { { ('⟳ %d/%d'):format(p.step, p.total), 'DiffillStep' } },
        virt_text_pos = 'eol',
        virt_lines = lines,
      })
    end
  end
  echo(msg)
end

local function on_progress(err, result, ctx, cfg)
  local default = vim.lsp.handlers['$/progress']
  if default then
    default(err, result, ctx, cfg)
  end
  local v = result and result.value
  if type(v) ~= 'table' then
    return
  end
  if v.kind == 'end' then
    S.progress = nil
    if next(S.running) == nil then
      echo((v.message or 'done'))
    end
    return
  end
  local parts = {}
  if v.title then
    table.insert(parts, v.title)
  end
  if v.message then
    table.insert(parts, v.message)
  end
  if v.percentage then
    table.insert(parts, v.percentage .. '%')
  end
  S.progress = table.concat(parts, ' ')
  if S.progress ~= '' then
    echo(S.progress)
  end
end

local function on_show_message(err, result, ctx, cfg)
  if result and result.type == 1 then
    S.last_error = result.message
  end
  return vim.lsp.handlers['window/showMessage'](err, result, ctx, cfg)
end

local function client()
  return S.client_id and vim.lsp.get_client_by_id(S.client_id) or nil
end
M.client = client

local function use_native_ghost()
  local g = S.opts.ghost_text
  if not g.enabled then
    return false
  end
  local available = vim.lsp.inline_completion ~= nil and vim.lsp.inline_completion.enable ~= nil
  if g.native == 'auto' then
    return available
  end
  return g.native == true and available
end

local function on_attach(c, bufnr)
  S.client_id = c.id
  if S.opts.omnifunc and vim.bo[bufnr].omnifunc == '' then
    vim.bo[bufnr].omnifunc = 'v:lua.vim.lsp.omnifunc'
  end
  if S.opts.ghost_text.enabled then
    if S.native_ghost then
      vim.lsp.inline_completion.enable(true, { bufnr = bufnr })
    else
      ghost.attach(bufnr, c.id, S.opts.ghost_text)
    end
  end
end

local function lsp_config()
  local settings = S.settings
  return {
    name = 'diffill',
    cmd = vim.list_extend({ S.binary, 'serve' }, S.opts.args or {}),
    root_dir = uv.cwd(),
    init_options = settings,
    -- Answers workspace/configuration for section "diffill" and is sent as didChangeConfiguration after initialize.
    settings = { diffill = settings },
    handlers = {
      ['diffill/step'] = on_step,
      ['$/progress'] = on_progress,
      ['window/showMessage'] = on_show_message,
    },
    on_attach = on_attach,
    on_exit = function(code, signal)
      S.client_id = nil
      if code == 0 then
        return
      end
      S.last_error = ('diffill serve exited with code %d%s; its stderr is in :LspLog'):format(code, signal ~= 0 and (' (signal ' .. signal .. ')') or '')
      -- Not restarted for the next buffer that opens (a server that cannot start would fail again and again).
      S.failed = ('serve exited with code %d, see :checkhealth diffill'):format(code)
      -- on_exit runs in a libuv callback, where most of the API is off limits. Neovim says "Client quit" itself
      -- at the next tick: said in the same tick, two lines would stop at a hit-enter prompt; after a redraw, ours
      -- replaces it.
      vim.defer_fn(function()
        if next(S.running) == nil then
          report_once(S.failed, vim.log.levels.ERROR)
          return
        end
        -- The commands in flight get no answer: end them, and say so whatever was said before (the user asked).
        S.running, S.busy, S.step = {}, 0, nil
        say(S.failed, vim.log.levels.ERROR)
        vim.api.nvim_exec_autocmds('User', { pattern = 'DiffillDone', modeline = false })
      end, 200)
    end,
  }
end

-- Whether bufnr is one diffill serves: its filetype is in setup()'s filetypes.
-- No other buffer is ever attached, so neither ghost text nor an edit of the
-- Go model reaches, say, a README.md.
local function serves(bufnr)
  local ft = vim.bo[bufnr].filetype
  for _, f in ipairs(S.opts.filetypes) do
    if f == ft or f == '*' then
      return true
    end
  end
  return false
end

-- Why bufnr cannot be served, or nil. Finding the binary again on an explicit
-- command lets a binary installed since setup() work without a restart.
local function unavailable(bufnr, explicit)
  if not serves(bufnr) then
    local ft = vim.bo[bufnr].filetype
    return ('nothing done: %s is not in filetypes (%s)'):format(ft == '' and 'no filetype' or ('filetype ' .. ft), table.concat(S.opts.filetypes, ', '))
  end
  if explicit and not S.binary then
    S.binary, S.binary_error = config.find_binary(S.opts)
  end
  if S.binary and vim.fn.executable(S.binary) ~= 1 then
    S.binary, S.binary_error = nil, ('%s is no longer executable'):format(S.binary)
  end
  if not S.binary then
    return 'no binary, see :checkhealth diffill: ' .. (S.opts.path or 'not on $PATH')
  end
  -- After a failed start only an explicit command tries again, not every buffer that opens.
  if S.failed and not explicit then
    return S.failed
  end
  return nil
end

-- Starts the server if needed and attaches bufnr to it. Returns the client id,
-- or nil and why not. explicit: a user's command (retries a failed start).
function M.attach(bufnr, explicit)
  bufnr = bufnr or vim.api.nvim_get_current_buf()
  if not S.opts then
    M.setup({})
  end
  local why = unavailable(bufnr, explicit)
  if why then
    return nil, why
  end
  S.failed = nil
  -- A start that fails raises an error on 0.8+ (a multi-line message and a hit-enter prompt if let through).
  local ok, err = pcall(function()
    if vim.lsp.start then
      -- One server for every buffer: the model is loaded once.
      S.client_id = vim.lsp.start(lsp_config(), {
        bufnr = bufnr,
        reuse_client = function(c, cfg)
          return c.name == cfg.name
        end,
      })
    else
      local c = client()
      if not c or c.is_stopped() then
        S.client_id = vim.lsp.start_client(lsp_config())
      end
      if S.client_id then
        vim.lsp.buf_attach_client(bufnr, S.client_id)
      end
    end
  end)
  if not ok or not S.client_id then
    S.client_id = nil
    S.last_error = ('could not start %s serve%s'):format(S.binary, ok and '' or (': ' .. tostring(err)))
    S.failed = 'could not start the server, see :checkhealth diffill'
    if not explicit then
      report_once(S.failed, vim.log.levels.ERROR)
    end
    return nil, S.failed
  end
  return S.client_id
end

-- Detaches bufnr (its filetype changed to one diffill does not serve).
local function detach(bufnr)
  ghost.detach(bufnr)
  local c = client()
  if c and c.attached_buffers and c.attached_buffers[bufnr] then
    vim.lsp.buf_detach_client(bufnr, c.id)
  end
end

-- Runs a diffill.* server command on bufnr; the server applies the edit.
-- range(encoding) gives the command's range (nil: none) in the encoding of
-- the client, which exists only once attached.
local function run(kind, bufnr, range, extra)
  local c = client()
  if not c or not c.attached_buffers or not c.attached_buffers[bufnr] then
    local _, why = M.attach(bufnr, true)
    if why then
      say(why, vim.log.levels.WARN)
      return
    end
    c = client()
  end
  if not c then
    notify('the server is not running; see :checkhealth diffill', vim.log.levels.ERROR)
    return
  end
  local uri = util.uri(bufnr)
  if S.running[uri] then
    notify('a command is already running on this buffer')
    return
  end
  range = range and range(c.offset_encoding or 'utf-16')
  -- lsp/code_action.go's commandArgs: the server refuses the command if the document changed since this version.
  local arg = { textDocument = { uri = uri, version = util.version(bufnr) } }
  if range then
    arg.range = range
  end
  for k, v in pairs(extra or {}) do
    arg[k] = v
  end
  local command = ({ infill = 'diffill.infillRange', rewrite = 'diffill.rewriteRange', fill = 'diffill.fillHoles' })[kind]
  S.running[uri] = { bufnr = bufnr, row = range and range['end'].line or nil }
  S.busy = S.busy + 1
  echo(({ infill = 'infilling…', rewrite = 'rewriting…', fill = 'filling holes…' })[kind])
  util.request(c, 'workspace/executeCommand', { command = command, arguments = { arg } }, function(err, result)
    S.running[uri] = nil
    S.busy = math.max(0, S.busy - 1)
    S.step = nil
    if vim.api.nvim_buf_is_valid(bufnr) then
      vim.api.nvim_buf_clear_namespace(bufnr, step_ns, 0, -1)
    end
    if not err and type(result) == 'table' and result.applied == false then
      err = { message = 'the edit was not applied' .. (result.failureReason and (': ' .. result.failureReason) or '') }
    end
    if err then
      S.last_error = err.message
      notify(command .. ': ' .. tostring(err.message), vim.log.levels.ERROR)
    else
      echo('done')
    end
    vim.api.nvim_exec_autocmds('User', { pattern = 'DiffillDone', modeline = false })
  end, bufnr)
end

function M.infill(cmd)
  local bufnr = vim.api.nvim_get_current_buf()
  local win = vim.api.nvim_get_current_win()
  run('infill', bufnr, function(enc)
    local range = util.command_range(bufnr, cmd or { range = 0 }, enc)
    if not range then
      -- No range: a point at the cursor, which the server completes.
      local pos = vim.api.nvim_win_get_cursor(win)
      local p = util.position(bufnr, pos[1] - 1, pos[2], enc)
      range = { start = p, ['end'] = p }
    end
    return range
  end)
end

function M.rewrite(cmd)
  cmd = cmd or { range = 0, args = '' }
  local bufnr = vim.api.nvim_get_current_buf()
  local row = vim.api.nvim_win_get_cursor(0)[1]
  local function range(enc)
    -- No range: the cursor line, whole.
    return util.command_range(bufnr, cmd, enc) or util.command_range(bufnr, { range = 1, line1 = row, line2 = row }, enc)
  end
  local extra = {}
  local strength = cmd.args ~= nil and cmd.args ~= '' and tonumber(cmd.args) or S.opts.rewrite_strength
  if cmd.args ~= nil and cmd.args ~= '' and (strength == nil or strength <= 0 or strength > 1) then
    notify(('strength must be a number in (0, 1], not %q'):format(cmd.args), vim.log.levels.ERROR)
    return
  end
  -- The server takes (0, 1]; 0 means its default and is not sent.
  if strength ~= nil and strength > 0 then
    extra.strength = strength
  end
  run('rewrite', bufnr, range, extra)
end

function M.fill_holes()
  run('fill', vim.api.nvim_get_current_buf(), nil)
end

-- Accepts the ghost text. Returns true when there was some.
function M.accept()
  if S.native_ghost then
    return vim.lsp.inline_completion.get() == true
  end
  return ghost.accept()
end

function M.dismiss()
  ghost.dismiss()
end

-- Sends changed settings to the running server, e.g. require('diffill').set({ steps = 8 }).
function M.set(new)
  for k, v in pairs(new or {}) do
    S.opts[k] = v
  end
  local settings, problems = config.server_settings(S.opts)
  S.settings, S.problems = settings, problems
  for _, p in ipairs(problems) do
    notify(p, vim.log.levels.WARN)
  end
  local c = client()
  if c then
    c.config.settings = { diffill = settings }
    util.notify(c, 'workspace/didChangeConfiguration', { settings = { diffill = settings } })
  end
end

-- For 'statusline': "diffill built-in·cpu idle", "… 3/16", "… error".
function M.statusline()
  if not S.opts then
    return ''
  end
  local where = config.model_label(S.settings) .. '·' .. (config.get(S.settings, 'device') or 'cpu')
  local c = client()
  if not c then
    return S.binary and ('diffill ' .. where .. ' off') or 'diffill: not found'
  end
  if S.busy > 0 then
    return ('diffill %s %s'):format(where, S.step and (S.step.step .. '/' .. S.step.total) or '…')
  end
  if S.last_error then
    return 'diffill ' .. where .. ' error'
  end
  return 'diffill ' .. where .. ' idle'
end

local function define_highlights()
  vim.api.nvim_set_hl(0, 'DiffillGhost', { default = true, link = 'Comment' })
  vim.api.nvim_set_hl(0, 'DiffillStep', { default = true, link = 'DiffAdd' })
end

function M.setup(opts)
  S.opts = config.merge(opts)
  S.settings, S.problems = config.server_settings(S.opts)
  for _, p in ipairs(S.problems) do
    notify(p, vim.log.levels.WARN)
  end
  S.binary, S.binary_error = config.find_binary(S.opts)
  S.failed = nil
  if not S.binary then
    -- Once, in one line: the fix is in :checkhealth diffill, and no buffer that opens says it again.
    report_once('no binary, see :checkhealth diffill: ' .. (S.opts.path or 'not on $PATH'), vim.log.levels.ERROR)
  end
  S.native_ghost = use_native_ghost()
  define_highlights()

  local group = vim.api.nvim_create_augroup('diffill', { clear = true })
  vim.api.nvim_create_autocmd('FileType', {
    group = group,
    callback = function(ev)
      if serves(ev.buf) then
        M.attach(ev.buf)
      else
        detach(ev.buf)
      end
    end,
  })
  vim.api.nvim_create_autocmd('ColorScheme', { group = group, callback = define_highlights })
  -- Buffers already open when setup() runs (e.g. setup() in an ftplugin).
  for _, b in ipairs(vim.api.nvim_list_bufs()) do
    if vim.api.nvim_buf_is_loaded(b) and serves(b) then
      M.attach(b)
    end
  end

  vim.api.nvim_create_user_command('DiffillInfill', function(cmd)
    M.infill(cmd)
  end, { range = true, desc = 'diffill: infill the range (or at the cursor) from the code around it' })
  vim.api.nvim_create_user_command('DiffillRewrite', function(cmd)
    M.rewrite(cmd)
  end, { range = true, nargs = '?', desc = 'diffill: rewrite the range (or the line) in place; optional strength 0..1' })
  vim.api.nvim_create_user_command('DiffillFillHoles', function()
    M.fill_holes()
  end, { desc = 'diffill: fill every hole marker in the buffer jointly' })

  local accept = S.opts.ghost_text.enabled and S.opts.ghost_text.accept
  if accept then
    local key = vim.api.nvim_replace_termcodes(accept, true, false, true)
    vim.keymap.set('i', accept, function()
      if not M.accept() then
        vim.api.nvim_feedkeys(key, 'n', false)
      end
    end, { desc = 'diffill: accept ghost text' })
  end
  if S.opts.keymaps then
    vim.keymap.set('n', '<leader>di', '<Cmd>DiffillInfill<CR>', { desc = 'diffill: infill at cursor' })
    vim.keymap.set('x', '<leader>di', ':DiffillInfill<CR>', { desc = 'diffill: infill selection' })
    vim.keymap.set('n', '<leader>dr', '<Cmd>DiffillRewrite<CR>', { desc = 'diffill: rewrite line' })
    vim.keymap.set('x', '<leader>dr', ':DiffillRewrite<CR>', { desc = 'diffill: rewrite selection' })
    vim.keymap.set('n', '<leader>dh', '<Cmd>DiffillFillHoles<CR>', { desc = 'diffill: fill holes' })
  end
  return M
end

return M
