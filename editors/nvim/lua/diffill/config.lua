-- Options of require('diffill').setup() and the settings object the server
-- reads (initializationOptions, workspace/didChangeConfiguration and
-- workspace/configuration section "diffill"). Pure Lua, no editor state.
-- vim.uv from 0.10, vim.loop before.
local uv = vim.uv or vim.loop

local M = {}

-- The settings the server reads, by their names on the wire (issue 5).
M.server_keys = {
  'model',
  'device',
  'steps',
  'sampler',
  'temperature',
  'maxTokens',
  'contextTokens',
  'holeMarker',
  'debounce',
}

M.samplers = { confidence = true, margin = true, entropy = true, random = true }
-- The server's devices (lsp/settings): auto is the GPU when there is one, else the CPU.
M.devices = { auto = true, cpu = true, cuda = true }

-- The server's ranges (lsp/settings); 0 means "default" there too.
local numbers = {
  steps = { integer = true, min = 0, max = 4096 },
  temperature = { integer = false, min = 0, max = 10 },
  maxTokens = { integer = true, min = 0, max = 4096 },
  contextTokens = { integer = true, min = 0, max = 65536 },
  debounce = { integer = true, min = 0, max = 5000 },
}

M.defaults = {
  -- The diffill binary. nil: $PATH, then $GOBIN, $GOPATH/bin, ~/go/bin.
  path = nil,
  -- Extra arguments after `diffill serve` (e.g. { '--log-file', '/tmp/diffill.log' }).
  args = {},
  -- Filetypes the server is started for.
  filetypes = { 'go' },
  -- Server settings; nil leaves the server's default.
  model = nil,
  device = nil,
  steps = nil,
  sampler = nil,
  temperature = nil,
  maxTokens = nil,
  contextTokens = nil,
  holeMarker = nil,
  debounce = nil,
  -- :DiffillRewrite's strength when the command is given none (nil: the server's default).
  rewrite_strength = nil,
  ghost_text = {
    enabled = true,
    -- 'auto': Neovim's own inline completion where it exists (0.12+), else diffill's extmark ghost text.
    native = 'auto',
    -- Insert-mode key that accepts the ghost text; the key keeps its meaning when no ghost text shows. false: no mapping.
    accept = '<Tab>',
    -- Milliseconds after a keystroke before asking (the server also debounces; this only spares requests).
    debounce_ms = 30,
  },
  -- true: the suggested mappings (<leader>di infill, <leader>dr rewrite, <leader>dh fill holes).
  keymaps = false,
  -- Show $/progress and diffill/step in the command line while a command runs.
  progress = true,
  -- Set 'omnifunc' to the LSP one in served buffers that have none, so <C-x><C-o> lists completion items.
  omnifunc = true,
}

local islist = vim.islist or vim.tbl_islist

local function deep_merge(base, over)
  local out = vim.deepcopy(base)
  for k, v in pairs(over or {}) do
    if type(v) == 'table' and type(out[k]) == 'table' and not islist(v) then
      out[k] = deep_merge(out[k], v)
    else
      out[k] = v
    end
  end
  return out
end

-- Merges user options onto the defaults. A settings = {...} table (the shape
-- of other LSP configs) is accepted as well as top-level keys.
function M.merge(opts)
  opts = opts or {}
  local flat = vim.deepcopy(opts)
  if type(opts.settings) == 'table' then
    local s = opts.settings.diffill or opts.settings
    for _, k in ipairs(M.server_keys) do
      if flat[k] == nil then
        flat[k] = s[k]
      end
    end
    flat.settings = nil
  end
  return deep_merge(M.defaults, flat)
end

local function expand(p)
  if type(p) ~= 'string' then
    return p
  end
  if p == '~' or p:sub(1, 2) == '~/' then
    return (uv.os_homedir() or '') .. p:sub(2)
  end
  return p
end
M.expand = expand

-- The settings object sent to the server, and one message per ignored value.
-- Every key is present: vim.NIL (JSON null) when unset, because the server
-- merges settings onto its current ones and resets a key only on null.
function M.server_settings(opts)
  local out, problems = {}, {}
  for _, k in ipairs(M.server_keys) do
    out[k] = vim.NIL
    local v = opts[k]
    local rule = numbers[k]
    if v == nil or v == vim.NIL then
      -- unset: the server keeps its default
    elseif rule then
      local n = tonumber(v)
      if n == nil or n ~= n or n < rule.min or n > rule.max then
        table.insert(problems, ('%s = %s is not a number in [%s, %s]; using the server default'):format(k, vim.inspect(v), rule.min, rule.max))
      else
        out[k] = rule.integer and math.floor(n + 0.5) or n
      end
    elseif type(v) ~= 'string' then
      table.insert(problems, ('%s = %s is not a string; using the server default'):format(k, vim.inspect(v)))
    elseif k == 'sampler' and not M.samplers[v] then
      table.insert(problems, ('sampler = %q is not one of confidence, margin, entropy, random; using the server default'):format(v))
    elseif k == 'device' and not M.devices[v] then
      table.insert(problems, ('device = %q is not one of auto, cpu, cuda; using the server default'):format(v))
    elseif v ~= '' then
      out[k] = k == 'model' and expand(v) or v
    end
  end
  return out, problems
end

-- A setting's value, nil when unset (vim.NIL).
function M.get(settings, k)
  local v = settings[k]
  if v == vim.NIL then
    return nil
  end
  return v
end

-- A short name for the model: "built-in", or the checkpoint's directory name.
function M.model_label(settings)
  local m = M.get(settings, 'model')
  if m == nil or m == '' or m == 'builtin' or m == 'built-in' then
    return 'built-in'
  end
  m = m:gsub('[/\\]+$', '')
  return m:match('([^/\\]+)$') or m
end

-- Finds the diffill binary: opts.path, else $PATH, else where `go install` puts it.
-- Returns path, or nil and a message with the fix.
function M.find_binary(opts, env)
  env = env or {
    executable = function(p)
      return vim.fn.executable(p) == 1
    end,
    exepath = vim.fn.exepath,
    getenv = uv.os_getenv,
    home = uv.os_homedir(),
  }
  -- The module is not published: `go install <module>@latest` does not work, a clone does.
  local install = 'in a clone of diffill, go install ./cmd/diffill'
  if opts.path ~= nil and opts.path ~= '' then
    local p = expand(opts.path)
    if env.executable(p) then
      return env.exepath(p) ~= '' and env.exepath(p) or p
    end
    return nil, ('path = %q is not an executable diffill. Fix: point path at the binary, or remove it to use $PATH (install: %s).'):format(opts.path, install)
  end
  if env.executable('diffill') then
    return env.exepath('diffill')
  end
  local gobin = env.getenv('GOBIN')
  if gobin == nil or gobin == '' then
    local gopath = env.getenv('GOPATH')
    gopath = gopath and gopath:match('^[^:]+') or (env.home .. '/go')
    gobin = gopath .. '/bin'
  end
  local p = gobin .. '/diffill'
  if env.executable(p) then
    return p
  end
  return nil, ('diffill was not found on $PATH or in %s. Fix: %s, or setup({ path = "/path/to/diffill" }).'):format(gobin, install)
end

return M
