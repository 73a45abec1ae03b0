-- The second half of the list sink's usual way to apply a batch (src/ship/list_push.rs):
-- queued in one MULTI/EXEC right after the batch's LPUSHes, so that nothing runs in
-- between. It keeps the batch and moves the position only where ship.lua would have
-- applied it; otherwise it takes the batch back off its lists (the newest `count`
-- entries of each list its LPUSH reached) and answers what ship.lua would.
--
-- KEYS[1]          the shipped-position key of this log
-- KEYS[2 .. n+1]   the batch's lists
-- ARGV[1]          the batch's first position
-- ARGV[2]          the new position (the batch's end)
-- ARGV[3 .. n+2]   how many records the batch pushed to each list
--
-- Answers {"ok", position} | {"dup", position} | {"ahead", position} |
-- {"refused", position}: a key holds another type (its LPUSH failed), or the position
-- key does; then ship.lua decides, and says which. Positions are compared as decimal
-- strings, as in ship.lua.
--
-- Why it cannot fail half-way: the pushes have happened when it runs, so it must always
-- either set the position or take them back. Only `pcall`, TYPE, and LTRIM on a list.
local function le(a, b) return #a < #b or (#a == #b and a <= b) end
local status = 'ok'
local cur = redis.pcall('GET', KEYS[1])
if type(cur) == 'table' then
  status, cur = 'refused', '0'
else
  cur = cur or '0'
  if le(ARGV[2], cur) then
    status = 'dup'
  elseif not le(cur, ARGV[1]) then
    status = 'ahead'
  end
end
-- A list now means its LPUSH went through: it held a list or nothing before.
for i = 2, #KEYS do
  if redis.call('TYPE', KEYS[i])['ok'] ~= 'list' then
    status = 'refused'
  end
end
if status == 'ok' then
  local set = redis.pcall('SET', KEYS[1], ARGV[2])
  if type(set) == 'table' and set['ok'] then
    return {'ok', ARGV[2]}
  end
  status = 'refused'
end
for i = 2, #KEYS do
  if redis.call('TYPE', KEYS[i])['ok'] == 'list' then
    redis.call('LTRIM', KEYS[i], ARGV[1 + i], -1)
  end
end
return {status, cur}
