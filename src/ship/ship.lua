-- One batch of the local log into Redis, with the new shipped position, all or nothing.
-- Called by both sinks (src/ship/redis_list.rs, src/ship/script.rs) through
-- src/ship/script/call.rs, which builds these arguments and reads the answer.
--
-- KEYS[1]            the shipped-position key of this log (in the batch's slot)
-- KEYS[2 .. n+1]     the keys of the batch (lists or streams)
-- KEYS[n+2 .. 2n+1]  their dead-letter keys (policy "dead" only)
-- ARGV[1]            the batch's first position
-- ARGV[2]            the new position (the batch's end)
-- ARGV[3]            "list" (LPUSH) or "stream" (XADD)
-- ARGV[4], ARGV[5]   stream trimming: "" | "MAXLEN" | "MINID", and its value
-- ARGV[6]            n, the number of keys
-- ARGV[7]            "hold" or "dead": what to do with a key that holds another type
-- ARGV[8 .. 7+n]     how many records go to each key
-- ARGV[8+n ..]       the records, key by key, each key's in log order. A list record is
--                    the record; a stream record is its number of named fields f, the
--                    record (field `r`), then f name/value pairs.
--
-- Answers {"ok", position, dead-lettered key…} | {"dup", position} |
-- {"ahead", position} | {"refused", position, key, type, key, type…}. Positions are
-- compared as decimal strings: Lua numbers are doubles, positions are u64.
--
-- Why all or nothing: a script is not rolled back when a command in it fails, so every
-- check that can fail comes before the first write. The types are checked up front
-- (LPUSH or XADD on a string is WRONGTYPE); Redis refuses a script's first write when
-- over `maxmemory`, on a read-only replica or after a failed save (OOM, READONLY,
-- MISCONF), and lets the rest of a script run once it has written. So an error answer
-- always means nothing was applied.
local function le(a, b) return #a < #b or (#a == #b and a <= b) end
local cur = redis.call('GET', KEYS[1]) or '0'
-- Applied already (a lost reply, a client's retry): nothing to do.
if le(ARGV[2], cur) then
  return {'dup', cur}
end
-- Redis holds a position inside the batch: the shipper resumes from there.
if not le(cur, ARGV[1]) then
  return {'ahead', cur}
end
local kind = ARGV[3]
local n = tonumber(ARGV[6])
local dead = ARGV[7] == 'dead'
local function takes(key)
  local t = redis.call('TYPE', key)['ok']
  return t == kind or t == 'none', t
end
local target = {}
local refused = {}
local dead_lettered = {}
for i = 1, n do
  local ok, t = takes(KEYS[1 + i])
  target[i] = KEYS[1 + i]
  if not ok then
    local to_dead = false
    if dead then
      -- The dead-letter key is of the same kind: a stream's is the stream
      -- `{key}:dead` that `tail --stream` also moves entries to.
      local dead_ok, dead_t = takes(KEYS[1 + n + i])
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
local at = 8 + n
for i = 1, n do
  local count = tonumber(ARGV[7 + i])
  if kind == 'list' then
    -- LPUSH takes many values at once; unpack in slices to stay within Lua's stack.
    local last = at + count - 1
    while at <= last do
      local upto = math.min(at + 999, last)
      redis.call('LPUSH', target[i], unpack(ARGV, at, upto))
      at = upto + 1
    end
  else
    for _ = 1, count do
      local f = tonumber(ARGV[at])
      local entry = {'r', unpack(ARGV, at + 1, at + 1 + 2 * f)}
      if ARGV[4] == '' then
        redis.call('XADD', target[i], '*', unpack(entry))
      else
        redis.call('XADD', target[i], ARGV[4], '~', ARGV[5], '*', unpack(entry))
      end
      at = at + 2 + 2 * f
    end
  end
end
redis.call('SET', KEYS[1], ARGV[2])
local answer = {'ok', ARGV[2]}
for _, k in ipairs(dead_lettered) do
  answer[#answer + 1] = k
end
return answer
