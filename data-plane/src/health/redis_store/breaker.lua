-- The shared circuit breaker of mana-llm, the Lua twin of health/breaker.rs.
--
-- One provider's breaker is a hash with the fields of `Breaker` (absent field = None) plus
-- `seq`, bumped on every change so mirrors can drop updates that arrive out of order.
-- Times are Unix seconds; they are written with 17 significant digits so an f64 survives
-- the trip through Lua and back bit for bit (the parity test relies on it).
--
-- ARGV[1] selects the operation:
--   'report' KEYS = {breaker hash, index set, trial lock}
--            ARGV = {'report', provider, channel, kind, now, reason, retry_after,
--                    failure_threshold, open_for, rate_limited_for}
--            kind: success | failure | rate_limited | probe_ok | probe_failure
--            returns {transition ('tripped' | 'recovered' | ''), message JSON}
--   'read'   KEYS = breaker hashes, ARGV = {'read', provider...}
--            returns one message JSON per key

local FIELDS = {'consecutive_failures', 'last_error', 'last_check', 'open_until',
                'opened_by', 'trial_started', 'seq'}

local function load(key)
  local raw = redis.call('HMGET', key, unpack(FIELDS))
  -- HMGET gives false for a missing field; `or nil` turns that into None.
  return {
    consecutive_failures = tonumber(raw[1]) or 0,
    last_error = raw[2] or nil,
    last_check = tonumber(raw[3]),
    open_until = tonumber(raw[4]),
    opened_by = raw[5] or nil,
    trial_started = tonumber(raw[6]),
    seq = tonumber(raw[7]) or 0,
  }
end

local function time(x)
  return string.format('%.17g', x)
end

local function json_time(x)
  if x == nil then return 'null' end
  return time(x)
end

local function json_string(s)
  if s == nil then return 'null' end
  return cjson.encode(s)
end

-- Built by hand: cjson would round times to 14 digits.
local function message(provider, b)
  return '{"provider":' .. cjson.encode(provider)
    .. ',"seq":' .. string.format('%d', b.seq)
    .. ',"breaker":{"consecutive_failures":' .. string.format('%d', b.consecutive_failures)
    .. ',"last_error":' .. json_string(b.last_error)
    .. ',"last_check":' .. json_time(b.last_check)
    .. ',"open_until":' .. json_time(b.open_until)
    .. ',"opened_by":' .. json_string(b.opened_by)
    .. ',"trial_started":' .. json_time(b.trial_started)
    .. '}}'
end

if ARGV[1] == 'read' then
  local out = {}
  for i, key in ipairs(KEYS) do
    out[i] = message(ARGV[i + 1], load(key))
  end
  return out
end

local provider, channel, kind = ARGV[2], ARGV[3], ARGV[4]
local now = tonumber(ARGV[5])
local reason = ARGV[6]
local retry_after = tonumber(ARGV[7])
local threshold = tonumber(ARGV[8])
local open_for = tonumber(ARGV[9])
local rate_limited_for = tonumber(ARGV[10])

local b = load(KEYS[1])
local transition = ''
-- Whether this outcome ends a half-open trial (clears `trial_started` in breaker.rs).
local ends_trial = true

-- Breaker::on_success: everything resets.
local function on_success()
  local was_tripped = b.open_until ~= nil
  b.consecutive_failures = 0
  b.last_error = nil
  b.last_check = now
  b.open_until = nil
  b.opened_by = nil
  b.trial_started = nil
  if was_tripped then transition = 'recovered' end
end

-- Breaker::fail: count, and trip at the threshold; while tripped, re-arm the window.
local function fail(by)
  b.consecutive_failures = b.consecutive_failures + 1
  b.last_check = now
  b.last_error = reason
  b.trial_started = nil
  local deadline = now + open_for
  if b.open_until ~= nil then
    b.open_until = deadline
    if by == 'calls' then b.opened_by = 'calls' end
  elseif b.consecutive_failures >= threshold then
    b.open_until = deadline
    b.opened_by = by
    transition = 'tripped'
  end
end

if kind == 'success' then
  on_success()
elseif kind == 'failure' then
  fail('calls')
elseif kind == 'rate_limited' then
  -- Breaker::on_rate_limited: open for Retry-After (or the default) whatever the count.
  local was_tripped = b.open_until ~= nil
  local deadline = now + (retry_after or rate_limited_for)
  b.last_check = now
  b.last_error = 'rate limited (429)'
  b.trial_started = nil
  if b.open_until == nil or deadline > b.open_until then b.open_until = deadline end
  b.opened_by = 'calls'
  if not was_tripped then transition = 'tripped' end
elseif kind == 'probe_failure' then
  fail('probe')
elseif kind == 'probe_ok' then
  -- Only a breaker that probes opened may be closed by a probe.
  if b.opened_by == 'probe' then
    on_success()
  else
    b.last_check = now
    ends_trial = false
  end
else
  return redis.error_reply('unknown breaker report kind: ' .. tostring(kind))
end

b.seq = redis.call('HINCRBY', KEYS[1], 'seq', 1)
local set, unset = {}, {}
local values = {
  consecutive_failures = string.format('%d', b.consecutive_failures),
  last_error = b.last_error,
  last_check = b.last_check and time(b.last_check),
  open_until = b.open_until and time(b.open_until),
  opened_by = b.opened_by,
  trial_started = b.trial_started and time(b.trial_started),
}
for _, field in ipairs(FIELDS) do
  if field ~= 'seq' then
    if values[field] then
      set[#set + 1] = field
      set[#set + 1] = values[field]
    else
      unset[#unset + 1] = field
    end
  end
end
redis.call('HSET', KEYS[1], unpack(set))
if #unset > 0 then redis.call('HDEL', KEYS[1], unpack(unset)) end
redis.call('SADD', KEYS[2], provider)
-- The trial lock stands for `trial_started` fleet-wide: an outcome that ends the trial in
-- breaker.rs (every one but a probe success on a breaker calls opened) releases it.
if ends_trial then
  redis.call('DEL', KEYS[3])
end
local msg = message(provider, b)
redis.call('PUBLISH', channel, msg)
return {transition, msg}
