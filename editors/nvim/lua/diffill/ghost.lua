-- Ghost text for Neovim versions without vim.lsp.inline_completion (before
-- 0.12): asks the server's textDocument/inlineCompletion as you type and
-- draws the first item as extmark virtual text. Typing a character the ghost
-- text starts with keeps the rest; any other change or cursor move, or
-- leaving insert mode, dismisses it. accept() inserts it.
local util = require('diffill.util')

-- vim.uv from 0.10, vim.loop before.
local uv = vim.uv or vim.loop

local M = {}

local ns = vim.api.nvim_create_namespace('diffill_ghost')
M.ns = ns

-- Per buffer: { client_id, timer, request_id, tick, ghost = { row, col, lines, start_row, start_col, end_row, end_col, text } }
local state = {}

local function clear(bufnr)
  local s = state[bufnr]
  if s then
    s.ghost = nil
  end
  if vim.api.nvim_buf_is_valid(bufnr) then
    vim.api.nvim_buf_clear_namespace(bufnr, ns, 0, -1)
  end
end

local function cancel(bufnr)
  local s = state[bufnr]
  if not s then
    return
  end
  if s.timer then
    s.timer:stop()
  end
  if s.request_id then
    local client = vim.lsp.get_client_by_id(s.client_id)
    if client then
      util.cancel(client, s.request_id)
    end
    s.request_id = nil
  end
end

local function cursor(bufnr)
  local win = vim.fn.bufwinid(bufnr)
  if win == -1 then
    return nil
  end
  local pos = vim.api.nvim_win_get_cursor(win)
  return pos[1] - 1, pos[2]
end

-- Draws ghost (the text still to insert, split in lines) at the cursor
-- (g.row, g.col). Accepting replaces up to g.end_col, so what follows the
-- ghost on screen is the line from g.end_col on, as it will read afterwards.
-- Neovim 0.10+ has inline virtual text, which shifts the rest of the line;
-- before it there is only overlay (drawn over the text) and eol, so the
-- overlay draws the ghost and then the rest of the line again, shifted
-- right, over the original rest. The same overlay serves 0.10+ when the item
-- replaces text after the cursor (an editor's closing bracket), which inline
-- text would leave visible, and when it has several lines (the rest of the
-- line then follows the last one).
local function draw(bufnr, g)
  vim.api.nvim_buf_clear_namespace(bufnr, ns, 0, -1)
  local text = util.line(bufnr, g.row)
  local col = math.min(g.col, #text)
  local lines = g.lines
  local opts = { hl_mode = 'combine', virt_text = { { lines[1], 'DiffillGhost' } } }
  if util.has('0.10') and #lines == 1 and g.end_col <= col then
    opts.virt_text_pos = 'inline'
  else
    opts.virt_text_pos = 'overlay'
    local after = text:sub(math.max(g.end_col, col) + 1)
    local virt_lines = {}
    for i = 2, #lines do
      table.insert(virt_lines, { { lines[i], 'DiffillGhost' } })
    end
    if after ~= '' then
      -- The rest of the line follows the ghost's last line, where accepting puts it.
      table.insert(#virt_lines > 0 and virt_lines[#virt_lines] or opts.virt_text, { after, 'Normal' })
    end
    -- Blank out what is left of the original rest of the line; widths in cells from the
    -- cursor's screen column, as a tab's width depends on where it starts.
    local start = vim.fn.strdisplaywidth(text:sub(1, col))
    local shown = ''
    for _, chunk in ipairs(opts.virt_text) do
      shown = shown .. chunk[1]
    end
    local pad = vim.fn.strdisplaywidth(text) - start - vim.fn.strdisplaywidth(shown, start)
    if pad > 0 then
      table.insert(opts.virt_text, { (' '):rep(pad), 'Normal' })
    end
    if #virt_lines > 0 then
      opts.virt_lines = virt_lines
    end
  end
  g.extmark = vim.api.nvim_buf_set_extmark(bufnr, ns, g.row, col, opts)
  g.tick, g.line = vim.api.nvim_buf_get_changedtick(bufnr), text
end

-- Turns an InlineCompletionItem into what is drawn: the part of insertText
-- that is not already typed between the item's range start and the cursor.
function M.ghost_from_item(bufnr, item, row, col, encoding)
  local insert = item.insertText
  if type(insert) == 'table' then
    insert = insert.value -- a snippet: shown and inserted as its text
  end
  if type(insert) ~= 'string' or insert == '' then
    return nil
  end
  local srow, scol, erow, ecol = row, col, row, col
  if item.range then
    srow = item.range.start.line
    scol = util.to_col(bufnr, srow, item.range.start.character, encoding)
    erow = item.range['end'].line
    ecol = util.to_col(bufnr, erow, item.range['end'].character, encoding)
  end
  if srow ~= row or scol > col then
    return nil -- the item does not start on the cursor line before the cursor: not ghost text here
  end
  local typed = util.line(bufnr, row):sub(scol + 1, col)
  if insert:sub(1, #typed) ~= typed then
    return nil
  end
  local shown = insert:sub(#typed + 1)
  if shown == '' then
    return nil
  end
  return {
    row = row,
    col = col,
    lines = vim.split(shown, '\n', { plain = true }),
    text = insert,
    start_row = srow,
    start_col = scol,
    end_row = erow,
    end_col = math.max(ecol, col),
  }
end

local function request(bufnr)
  local s = state[bufnr]
  if not s or vim.api.nvim_get_mode().mode:sub(1, 1) ~= 'i' or vim.api.nvim_get_current_buf() ~= bufnr then
    return
  end
  local client = vim.lsp.get_client_by_id(s.client_id)
  if not client or (client.is_stopped and client.is_stopped()) then
    return
  end
  local row, col = cursor(bufnr)
  if row == nil then
    return
  end
  local encoding = client.offset_encoding or 'utf-16'
  local params = {
    textDocument = { uri = util.uri(bufnr) },
    position = util.position(bufnr, row, col, encoding),
    context = { triggerKind = 2 }, -- Automatic
  }
  local tick = vim.api.nvim_buf_get_changedtick(bufnr)
  local ok, id
  ok, id = util.request(client, 'textDocument/inlineCompletion', params, function(err, result)
    if s.request_id == id then
      s.request_id = nil
    end
    if err or not result then
      return
    end
    -- Stale: the text or the cursor moved since the request, or insert mode ended.
    if vim.api.nvim_buf_get_changedtick(bufnr) ~= tick or vim.api.nvim_get_mode().mode:sub(1, 1) ~= 'i' then
      return
    end
    local r2, c2 = cursor(bufnr)
    if r2 ~= row or c2 ~= col then
      return
    end
    -- The answer for this text and cursor is the server's last word: no item (or one that does not fit) clears
    -- a ghost kept from before, e.g. while typing through it, rather than showing what the server no longer says.
    local items = type(result) == 'table' and (result.items or result) or {}
    local g = type(items) == 'table' and items[1] ~= nil and M.ghost_from_item(bufnr, items[1], row, col, encoding) or nil
    s.answers = (s.answers or 0) + 1
    s.answer = { n = s.answers, row = row, col = col, items = items, shown = g and table.concat(g.lines, '\n') or nil }
    if g then
      s.ghost = g
      draw(bufnr, g)
    else
      clear(bufnr)
    end
  end, bufnr)
  if ok then
    s.request_id = id
  end
end

local function schedule_request(bufnr, delay)
  local s = state[bufnr]
  cancel(bufnr)
  s.timer = s.timer or uv.new_timer()
  s.timer:start(delay, 0, vim.schedule_wrap(function()
    request(bufnr)
  end))
end

-- Follows the ghost through what was typed since it was drawn: when that is
-- its next characters, inserted at its column, the rest stays (true), and the
-- text it replaces after the cursor moved right with them; else it goes.
local function follow(bufnr)
  local s = state[bufnr]
  local g = s and s.ghost
  if not g then
    return false
  end
  if g.tick == vim.api.nvim_buf_get_changedtick(bufnr) then
    return true
  end
  local row, col = cursor(bufnr)
  local line = util.line(bufnr, g.row)
  if row == g.row and col > g.col then
    local typed = line:sub(g.col + 1, col)
    if g.lines[1]:sub(1, #typed) == typed and #typed < #g.lines[1] and line == g.line:sub(1, g.col) .. typed .. g.line:sub(g.col + 1) then
      g.lines[1] = g.lines[1]:sub(#typed + 1)
      g.end_col = g.end_col + #typed
      g.col = col
      draw(bufnr, g)
      return true
    end
  end
  clear(bufnr)
  return false
end

local function on_text_changed(bufnr, delay)
  follow(bufnr)
  schedule_request(bufnr, delay)
end

function M.attach(bufnr, client_id, opts)
  if state[bufnr] then
    state[bufnr].client_id = client_id
    return
  end
  state[bufnr] = { client_id = client_id }
  local delay = opts.debounce_ms or 30
  local group = vim.api.nvim_create_augroup('diffill_ghost_' .. bufnr, { clear = true })
  vim.api.nvim_create_autocmd('TextChangedI', {
    group = group,
    buffer = bufnr,
    callback = function()
      on_text_changed(bufnr, delay)
    end,
  })
  -- Neovim runs CursorMovedI before TextChangedI for a typed character: a
  -- move that came with a change is typing, which follow() judges; only a
  -- move alone dismisses.
  vim.api.nvim_create_autocmd('CursorMovedI', {
    group = group,
    buffer = bufnr,
    callback = function()
      local g = state[bufnr] and state[bufnr].ghost
      if not g then
        return
      end
      local row, col = cursor(bufnr)
      if row == g.row and col == g.col then
        return
      end
      if g.tick ~= vim.api.nvim_buf_get_changedtick(bufnr) then
        follow(bufnr)
      else
        clear(bufnr)
        cancel(bufnr)
      end
    end,
  })
  vim.api.nvim_create_autocmd({ 'InsertLeave', 'BufLeave' }, {
    group = group,
    buffer = bufnr,
    callback = function()
      cancel(bufnr)
      clear(bufnr)
    end,
  })
  vim.api.nvim_create_autocmd('BufUnload', {
    group = group,
    buffer = bufnr,
    callback = function()
      M.detach(bufnr)
    end,
  })
end

function M.detach(bufnr)
  cancel(bufnr)
  clear(bufnr)
  local s = state[bufnr]
  if s and s.timer then
    s.timer:close()
  end
  state[bufnr] = nil
  pcall(vim.api.nvim_del_augroup_by_name, 'diffill_ghost_' .. bufnr)
end

-- Asks for ghost text now (as if a key had been typed).
function M.trigger(bufnr)
  bufnr = bufnr or vim.api.nvim_get_current_buf()
  if state[bufnr] then
    request(bufnr)
  end
end

-- The latest answer drawn or refused for bufnr: { n, row, col, items, shown } (for tests and debugging).
function M.answer(bufnr)
  bufnr = bufnr or vim.api.nvim_get_current_buf()
  return state[bufnr] and state[bufnr].answer
end

function M.visible(bufnr)
  bufnr = bufnr or vim.api.nvim_get_current_buf()
  return state[bufnr] ~= nil and state[bufnr].ghost ~= nil
end

-- A copy of the shown ghost, { row, col, lines, text, start_row, start_col, end_row, end_col }, or nil.
function M.state(bufnr)
  bufnr = bufnr or vim.api.nvim_get_current_buf()
  local g = state[bufnr] and state[bufnr].ghost
  return g and vim.deepcopy(g) or nil
end

-- The text still to insert, or nil.
function M.text(bufnr)
  bufnr = bufnr or vim.api.nvim_get_current_buf()
  local g = state[bufnr] and state[bufnr].ghost
  return g and table.concat(g.lines, '\n') or nil
end

-- Inserts the ghost text (replacing the item's range) and puts the cursor after it. Returns true when there was one.
function M.accept(bufnr)
  bufnr = bufnr or vim.api.nvim_get_current_buf()
  -- Keys typed since the last redraw (typeahead, a mapping) have not been followed yet.
  if not follow(bufnr) then
    return false
  end
  local g = state[bufnr].ghost
  cancel(bufnr)
  clear(bufnr)
  local lines = vim.split(g.text, '\n', { plain = true })
  vim.api.nvim_buf_set_text(bufnr, g.start_row, g.start_col, g.end_row, g.end_col, lines)
  local last_row = g.start_row + #lines - 1
  local last_col = (#lines == 1 and g.start_col or 0) + #lines[#lines]
  local win = vim.fn.bufwinid(bufnr)
  if win ~= -1 then
    vim.api.nvim_win_set_cursor(win, { last_row + 1, last_col })
  end
  return true
end

function M.dismiss(bufnr)
  bufnr = bufnr or vim.api.nvim_get_current_buf()
  cancel(bufnr)
  clear(bufnr)
end

return M
