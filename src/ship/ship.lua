-- One batch of the local log into Redis lists, with the new shipped position, all or
-- nothing. Loaded by src/ship/redis_list.rs; read that file's comment first.
--
-- KEYS[1]            the shipped-position key of this log
-- KEYS[2 .. n+1]     the lists of the batch
-- KEYS[n+2 .. 2n+1]  their dead-letter lists (policy "dead" only)
-- ARGV[1]            the batch's first position
-- ARGV[2]            the new position (the batch's end)
-- ARGV[3]            n, the number of lists
-- ARGV[4]            "hold" or "dead": what to do with a list Redis cannot push to
-- ARGV[5 .. 4+n]     how many records go to each list
-- ARGV[5+n ..]       the records, list by list, each list's in log order
--
-- Answers {"ok", position, dead-lettered list…} | {"dup", position} |
-- {"ahead", position} | {"refused", position, list, type, list, type…}. Positions are
-- compared as decimal strings: Lua numbers are doubles, positions are u64.
--
-- Why all or nothing: a script is not rolled back when a command in it fails, so every
-- check that can fail comes before the first write. The types are checked up front
-- (LPUSH on a string is WRONGTYPE); Redis refuses a script's first write when over
-- `maxmemory`, on a read-only replica or after a failed save (OOM, READONLY, MISCONF),
-- and lets the rest of a script run once it has written. So an error answer always
-- means nothing was applied.
local function le(a, b) return #a < #b or (#a == #b and a <= b) end
local cur = redis.call('GET', KEYS[1]) or '0'
-- Applied already (a lost reply): nothing to do.
if le(ARGV[2], cur) then
  return {'dup', cur}
end
-- Redis holds a position inside the batch: the shipper resumes from there.
if not le(cur, ARGV[1]) then
  return {'ahead', cur}
end
local n = tonumber(ARGV[3])
local dead = ARGV[4] == 'dead'
local function pushable(key)
  local t = redis.call('TYPE', key)['ok']
  return t == 'list' or t == 'none', t
end
local target = {}
local refused = {}
local dead_lettered = {}
for i = 1, n do
  local ok, t = pushable(KEYS[1 + i])
  target[i] = KEYS[1 + i]
  if not ok then
    local to_dead = false
    if dead then
      local dead_ok, dead_t = pushable(KEYS[1 + n + i])
      if dead_ok then
        target[i] = KEYS[1 + n + i]
        dead_lettered[#dead_lettered + 1] = KEYS[1 + i]
        to_dead = true
      else
        t = t .. ', and ' .. KEYS[1 + n + i] .. ' holds a ' .. dead_t
      end
    end
    if not to_dead then
      refused[#refused + 1] = KEYS[1 + i]
      refused[#refused + 1] = t
    end
  end
end
if #refused > 0 then
  local answer = {'refused', cur}
  for _, v in ipairs(refused) do
    answer[#answer + 1] = v
  end
  return answer
end
-- LPUSH takes many values at once; unpack in slices to stay within Lua's stack.
local at = 5 + n
for i = 1, n do
  local count = tonumber(ARGV[4 + i])
  local last = at + count - 1
  while at <= last do
    local upto = math.min(at + 999, last)
    redis.call('LPUSH', target[i], unpack(ARGV, at, upto))
    at = upto + 1
  end
end
redis.call('SET', KEYS[1], ARGV[2])
local answer = {'ok', ARGV[2]}
for _, k in ipairs(dead_lettered) do
  answer[#answer + 1] = k
end
return answer
