-- :checkhealth diffill — binary, model, device and server state.
-- Neovim 0.7 reads lua/diffill/health.lua too, through require('health');
-- 0.8/0.9 have vim.health.report_*, 0.10+ vim.health.start/ok/....
local M = {}

local function reporter()
  local h = vim.health or require('health')
  return {
    start = h.start or h.report_start,
    ok = h.ok or h.report_ok,
    info = h.info or h.report_info,
    warn = h.warn or h.report_warn,
    error = h.error or h.report_error,
  }
end

-- Runs `diffill serve -h` with a time limit: proves the binary runs on this machine.
local function probe(binary)
  local out = {}
  -- jobstart raises E903 when the process cannot start (e.g. a script whose interpreter is missing).
  local started, job = pcall(vim.fn.jobstart, { binary, 'serve', '-h' }, {
    stdout_buffered = true,
    stderr_buffered = true,
    on_stdout = function(_, d)
      vim.list_extend(out, d)
    end,
    on_stderr = function(_, d)
      vim.list_extend(out, d)
    end,
  })
  if not started or job <= 0 then
    return false, 'could not start it' .. (started and '' or (': ' .. tostring(job):gsub('^Vim:', '')))
  end
  local code = vim.fn.jobwait({ job }, 10000)[1]
  if code == -1 then
    vim.fn.jobstop(job)
    return false, '`diffill serve -h` did not answer within 10 s'
  end
  -- flag's -h exits 0 (or 2 with older flag handling); anything else means it does not run here.
  if code ~= 0 and code ~= 2 then
    return false, ('`diffill serve -h` exited with %d: %s'):format(code, table.concat(out, ' '):sub(1, 200))
  end
  return true
end

function M.check()
  local r = reporter()
  local ok_diffill, diffill = pcall(require, 'diffill')
  r.start('diffill: Neovim')
  if vim.fn.has('nvim-0.7') == 1 then
    r.ok(('Neovim %s (0.7 or newer)'):format(tostring(vim.version().major .. '.' .. vim.version().minor .. '.' .. vim.version().patch)))
  else
    r.error('Neovim 0.7 or newer is needed')
  end
  local S = ok_diffill and diffill._state or nil
  if not S or not S.opts then
    r.warn('require("diffill").setup() has not run', { 'Add require("diffill").setup({}) to your init.lua' })
    return
  end
  if S.native_ghost then
    r.ok('ghost text: Neovim\'s native inline completion (vim.lsp.inline_completion)')
  elseif S.opts.ghost_text.enabled then
    r.ok('ghost text: diffill\'s extmark ghost text (this Neovim has no vim.lsp.inline_completion), accept with ' .. tostring(S.opts.ghost_text.accept or 'require("diffill").accept()'))
  else
    r.info('ghost text: off')
  end

  r.start('diffill: binary')
  if S.binary then
    local ran, why = probe(S.binary)
    if ran then
      r.ok('binary: ' .. S.binary)
    else
      r.error(('binary: %s, but %s'):format(S.binary, why), { 'Rebuild it: go build -o diffill ./cmd/diffill' })
    end
  else
    r.error('binary: ' .. tostring(S.binary_error), { 'In a clone of diffill: go install ./cmd/diffill (to $(go env GOPATH)/bin)', 'or setup({ path = "/path/to/diffill" })' })
  end

  r.start('diffill: model and device')
  for _, p in ipairs(S.problems or {}) do
    r.warn('setting ignored: ' .. p)
  end
  local config = require('diffill.config')
  local model = config.get(S.settings, 'model')
  if model == nil then
    r.ok('model: built-in Go model (embedded in the binary)')
  elseif vim.fn.isdirectory(model) == 1 then
    local has_config = vim.fn.filereadable(model .. '/config.json') == 1
    local weights = vim.fn.glob(model .. '/*.safetensors', false, true)
    if has_config and #weights > 0 then
      r.ok(('model: %s (config.json, %d safetensors file(s))'):format(model, #weights))
    else
      r.error(('model: %s lacks %s'):format(model, has_config and '*.safetensors' or 'config.json'), { 'Point model at a Hugging Face checkpoint directory, or remove it for the built-in model' })
    end
  else
    r.error('model: ' .. model .. ' is not a directory', { 'Point model at a Hugging Face checkpoint directory, or remove it for the built-in model' })
  end
  local device = config.get(S.settings, 'device') or 'cpu'
  if device == 'cuda' and vim.fn.executable('nvidia-smi') == 0 then
    r.warn('device: cuda, but nvidia-smi is not on $PATH; the server will say whether it finds a GPU')
  else
    r.ok('device: ' .. device)
  end
  local shown = {}
  for k, v in pairs(S.settings) do
    if k ~= 'model' and k ~= 'device' and v ~= vim.NIL then
      table.insert(shown, k .. '=' .. tostring(v))
    end
  end
  table.sort(shown)
  r.info('settings sent to the server: ' .. (#shown > 0 and table.concat(shown, ', ') or 'server defaults'))

  r.start('diffill: server')
  local c = diffill.client()
  if not c then
    if not S.binary then
      r.info('server: not started (no binary, see above)')
    elseif S.last_error then
      r.error('server: not running; last error: ' .. S.last_error, { 'See :LspLog', 'A diffill command starts it again' })
    else
      r.info(('server: not started (it starts when a buffer of filetype %s opens)'):format(table.concat(S.opts.filetypes, ', ')))
    end
    return
  end
  local pid = c.rpc and c.rpc.pid
  local bufs = {}
  for b in pairs(c.attached_buffers or {}) do
    table.insert(bufs, vim.fn.fnamemodify(vim.api.nvim_buf_get_name(b), ':~:.'))
  end
  table.sort(bufs)
  local initialized = c.initialized
  if initialized == nil then
    initialized = c.server_capabilities ~= nil
  end
  if initialized then
    local info = c.server_info or (c.rpc and c.rpc.server_info) or {}
    r.ok(('server: running (client %d%s%s), %d buffer(s): %s'):format(c.id, pid and (', pid ' .. pid) or '', info.version and (', version ' .. info.version) or '', #bufs, table.concat(bufs, ', ')))
  else
    r.warn('server: starting (initialize not answered yet)')
    return
  end
  local caps = c.server_capabilities or (c.resolved_capabilities and {}) or {}
  local function cap(name, present)
    if present then
      r.ok('server offers ' .. name)
    else
      r.warn('server does not offer ' .. name)
    end
  end
  cap('inline completion', caps.inlineCompletionProvider ~= nil and caps.inlineCompletionProvider ~= false)
  cap('completion', caps.completionProvider ~= nil)
  cap('code actions', caps.codeActionProvider ~= nil and caps.codeActionProvider ~= false)
  local cmds = {}
  for _, name in ipairs((caps.executeCommandProvider or {}).commands or {}) do
    cmds[name] = true
  end
  cap('diffill.infillRange, diffill.rewriteRange, diffill.fillHoles', cmds['diffill.infillRange'] and cmds['diffill.rewriteRange'] and cmds['diffill.fillHoles'])
  r.info('offset encoding: ' .. tostring(c.offset_encoding))
  if S.busy > 0 then
    r.info(('busy: %d request(s)%s'):format(S.busy, S.step and (', step ' .. S.step.step .. '/' .. S.step.total) or ''))
  end
  if S.last_error then
    r.warn('last error: ' .. S.last_error)
  end
end

return M
