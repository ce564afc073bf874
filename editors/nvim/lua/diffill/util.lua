-- Version shims (Neovim 0.7 to 0.12) and LSP position conversion.
local M = {}

local function has(v)
  return vim.fn.has('nvim-' .. v) == 1
end
M.has = has

-- The clients named diffill (get_clients is 0.10+, get_active_clients older).
function M.clients(bufnr)
  local all = vim.lsp.get_clients and vim.lsp.get_clients({ name = 'diffill' }) or vim.lsp.get_active_clients()
  local out = {}
  for _, c in ipairs(all) do
    if c.name == 'diffill' and (bufnr == nil or (c.attached_buffers and c.attached_buffers[bufnr])) then
      table.insert(out, c)
    end
  end
  return out
end

-- client:request in 0.11+ (method call), client.request before. Returns ok, request id.
function M.request(client, method, params, handler, bufnr)
  if has('0.11') then
    return client:request(method, params, handler, bufnr)
  end
  return client.request(method, params, handler, bufnr)
end

function M.notify(client, method, params)
  if has('0.11') then
    return client:notify(method, params)
  end
  return client.notify(method, params)
end

function M.cancel(client, id)
  if has('0.11') then
    return client:cancel_request(id)
  end
  return client.cancel_request(id)
end

-- The version the client last sent for bufnr (what the server checks an edit against).
function M.version(bufnr)
  local v = vim.lsp.util.buf_versions and vim.lsp.util.buf_versions[bufnr]
  if v == nil then
    v = vim.api.nvim_buf_get_changedtick(bufnr)
  end
  return v
end

function M.uri(bufnr)
  return vim.uri_from_bufnr(bufnr)
end

local function line(bufnr, row)
  return vim.api.nvim_buf_get_lines(bufnr, row, row + 1, false)[1] or ''
end
M.line = line

-- Byte column (0-based) on row -> LSP character in the client's encoding.
function M.to_character(bufnr, row, col, encoding)
  local text = line(bufnr, row)
  col = math.max(0, math.min(col, #text))
  if encoding == 'utf-8' then
    return col
  end
  if has('0.11') then
    return vim.str_utfindex(text, encoding or 'utf-16', col, false)
  end
  local u32, u16 = vim.str_utfindex(text, col)
  return encoding == 'utf-32' and u32 or u16
end

-- LSP character on row -> byte column (0-based).
function M.to_col(bufnr, row, character, encoding)
  local text = line(bufnr, row)
  if encoding == 'utf-8' then
    return math.min(character, #text)
  end
  local ok, col
  if has('0.11') then
    ok, col = pcall(vim.str_byteindex, text, encoding or 'utf-16', character, false)
  else
    ok, col = pcall(vim.str_byteindex, text, character, encoding ~= 'utf-32')
  end
  if not ok then
    return #text
  end
  return col
end

function M.position(bufnr, row, col, encoding)
  return { line = row, character = M.to_character(bufnr, row, col, encoding) }
end

-- Byte length of the character that starts at byte col of s (1 for ASCII, up to 4 for UTF-8).
function M.char_len(s, col)
  local b = s:byte(col + 1)
  if b == nil then
    return 0
  end
  if b >= 0xF0 then
    return 4
  elseif b >= 0xE0 then
    return 3
  elseif b >= 0xC0 then
    return 2
  end
  return 1
end

-- The LSP range of a user command's range. Charwise when the command was run
-- from a charwise visual selection ('<,'> with visualmode() == 'v'), else whole
-- lines (line1 through the end of line2). No range: nil.
function M.command_range(bufnr, cmd, encoding)
  if cmd.range == 0 then
    return nil
  end
  local s = vim.api.nvim_buf_get_mark(bufnr, '<')
  local e = vim.api.nvim_buf_get_mark(bufnr, '>')
  local srow, scol, erow, ecol
  if vim.fn.visualmode() == 'v' and s[1] == cmd.line1 and e[1] == cmd.line2 then
    srow, scol = s[1] - 1, s[2]
    erow = e[1] - 1
    local etext = line(bufnr, erow)
    -- '> is on the last selected character (its first byte, unless set by hand); the range ends after it.
    local c = e[2]
    while c > 0 and (etext:byte(c + 1) or 0) >= 0x80 and (etext:byte(c + 1) or 0) < 0xC0 do
      c = c - 1
    end
    ecol = math.min(#etext, c + M.char_len(etext, c))
  else
    srow, scol = cmd.line1 - 1, 0
    erow = cmd.line2 - 1
    ecol = #line(bufnr, erow)
  end
  return {
    start = M.position(bufnr, srow, scol, encoding),
    ['end'] = M.position(bufnr, erow, ecol, encoding),
  }
end

return M
