-- The Neovim inside the "screen" scenario's terminal: the plugin as a user
-- would set it up, plus a state file the outer Neovim polls to know when to
-- capture the screen (it cannot see this Neovim's variables).
local state_file = assert(os.getenv('DIFFILL_SCREEN_STATE'))
vim.cmd('filetype on')
vim.cmd('filetype detect')
vim.o.number = true
vim.o.autoindent = true
vim.o.laststatus = 2
vim.o.statusline = "%f %= %{v:lua.require'diffill'.statusline()} "
local diffill = require('diffill')
local model = os.getenv('DIFFILL_TEST_MODEL')
diffill.setup({ path = os.getenv('DIFFILL_BIN'), keymaps = true, holeMarker = '/*?*/', model = model ~= '' and model or nil })
local last
local function write(s)
  if s ~= last then
    local f = io.open(state_file, 'w')
    f:write(s)
    f:close()
    last = s
  end
end
local done = 0
vim.api.nvim_create_autocmd('User', {
  pattern = 'DiffillDone',
  callback = function()
    done = done + 1
  end,
})
local timer = vim.loop.new_timer()
timer:start(100, 100, vim.schedule_wrap(function()
  local c = diffill.client()
  local ready = c and c.server_capabilities ~= nil
  local g = require('diffill.ghost').visible() and 'ghost' or 'noghost'
  write(('%s %s done=%d'):format(ready and 'ready' or 'starting', g, done))
end))
