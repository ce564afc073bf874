-- The Neovim inside a terminal scenario's terminal (test/e2e.lua): the plugin
-- as a user would set it up, plus a state file the outer Neovim polls to know
-- when to capture the screen (it cannot see this Neovim's variables).
-- DIFFILL_INNER_OPTS: JSON merged into the setup() options.
local state_file = assert(os.getenv('DIFFILL_SCREEN_STATE'))
vim.cmd('filetype on')
vim.cmd('filetype detect')
vim.o.number = true
vim.o.autoindent = true
vim.o.laststatus = 2
vim.o.statusline = "%f %= %{v:lua.require'diffill'.statusline()} "
local diffill = require('diffill')
local model = os.getenv('DIFFILL_TEST_MODEL')
local opts = { path = os.getenv('DIFFILL_BIN'), keymaps = true, holeMarker = '/*?*/', model = model ~= '' and model or nil }
local extra = os.getenv('DIFFILL_INNER_OPTS')
if extra and extra ~= '' then
  opts = vim.tbl_deep_extend('force', opts, vim.fn.json_decode(extra))
end
diffill.setup(opts)
local ghost = require('diffill.ghost')
local last
local function write(s)
  if s ~= last then
    local f = io.open(state_file .. '.tmp', 'w')
    f:write(s)
    f:close()
    os.rename(state_file .. '.tmp', state_file)
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
-- First line: "ready|starting ghost|noghost done=N" (what the outer Neovim matches); second: JSON details.
local timer = vim.loop.new_timer()
timer:start(100, 100, vim.schedule_wrap(function()
  local c = diffill.client()
  local ready = c and c.server_capabilities ~= nil
  local bufnr = vim.api.nvim_get_current_buf()
  local visible = ghost.visible(bufnr)
  local pos = vim.api.nvim_win_get_cursor(0)
  local detail = {
    mode = vim.api.nvim_get_mode().mode,
    cursor = pos,
    line = vim.api.nvim_get_current_line(),
    ghost = visible and ghost.state(bufnr) or vim.NIL,
    messages = vim.fn.execute('messages'),
  }
  write(('%s %s done=%d\n%s'):format(ready and 'ready' or 'starting', visible and 'ghost' or 'noghost', done, vim.fn.json_encode(detail)))
end))
