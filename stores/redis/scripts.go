package redisstore

import "github.com/redis/go-redis/v9"

// The Lua scripts below, and the MULTI/EXEC transactions that write chunks (SETs followed by
// putCheckScript), are the only commands that change a session's keys, so every change is
// atomic. Each script receives keys of one session, which share a hash tag and so a Redis Cluster
// slot; chunk keys are many, so most scripts build their names from the chunk key base (ARGV[1],
// "<prefix>{<session>}:chunk:") instead of receiving them all in KEYS. They are in the slot of
// the declared keys, which is what Redis Cluster requires of the keys a script touches.
//
// Times come from the server's clock (TIME), so that leases taken by processes on different hosts
// compare correctly. Redis replicates the effects of a script, not the script, so calling TIME
// before writing is allowed (Redis 5 and later).
//
// Numbers go to and from Redis as decimal strings; Lua 5.1 prints an integral number of up to 14
// digits without an exponent, which covers millisecond times until the year 5138.

// prelude holds the helpers every script may use.
const prelude = `
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function chunk(base, gen, i)
  return base .. gen .. ':' .. i
end
local function del_chunks(base, gen, n)
  for i = 0, n - 1 do
    redis.call('DEL', chunk(base, gen, i))
  end
end
-- expire_at_least makes key expire in ms or later (a bookkeeping key always expires).
local function expire_at_least(key, ms)
  if redis.call('PTTL', key) < ms then
    redis.call('PEXPIRE', key, ms)
  end
end
-- extend makes a key that already expires live at least ms more (a persistent key stays so).
local function extend(key, ms)
  local t = redis.call('PTTL', key)
  if t >= 0 and t < ms then
    redis.call('PEXPIRE', key, ms)
  end
end
-- supersede deletes the chunks and registrations of every pending Save but those in spare (a
-- set of generations, or nil): each finds, at its next step, that it was overtaken.
local function supersede(saves, base, spare)
  local w = redis.call('HGETALL', saves)
  for j = 1, #w, 2 do
    if not (spare and spare[w[j]]) then
      del_chunks(base, w[j], tonumber(w[j + 1]))
      redis.call('HDEL', saves, w[j])
    end
  end
end
-- retire disposes of a generation that is no longer the session's archive: its chunks are
-- deleted at once, or, if Extracts hold leases on it, expire when the last lease does.
local function retire(readers, base, gen, n, now)
  redis.call('ZREMRANGEBYSCORE', readers, '-inf', now)
  local keep = 0
  local prefix = gen .. ':'
  local r = redis.call('ZRANGE', readers, 0, -1, 'WITHSCORES')
  for j = 1, #r, 2 do
    if string.sub(r[j], 1, #prefix) == prefix then
      keep = math.max(keep, tonumber(r[j + 1]))
    end
  end
  for i = 0, n - 1 do
    if keep == 0 then
      redis.call('DEL', chunk(base, gen, i))
    else
      redis.call('PEXPIREAT', chunk(base, gen, i), keep)
    end
  end
end
-- fenced reports whether a write with fencing token 'token' may go on: token 0 (a write of
-- Store, not of a Lease) always may; another only while it is the newest token of the lease
-- hash and not released, expired or not.
local function fenced(lease, token)
  if tonumber(token) == 0 then
    return true
  end
  local l = redis.call('HMGET', lease, 'token', 'released')
  return tonumber(l[1]) == tonumber(token) and l[2] == '0'
end
-- A kept archive is an entry of the history list, "<gen>:<chunks>:<size>:<chunk_size>:<saved_ms>".
local function kept_entry(m)
  return m[1] .. ':' .. (m[2] or '0') .. ':' .. (m[3] or '0') .. ':' .. (m[4] or '0') .. ':' .. (m[5] or '0')
end
local function parse_kept(e)
  return string.match(e, '^(%x+):(%d+):(%d+):(%d+):(%d+)$')
end
-- is_kept reports whether gen is in the history list.
local function is_kept(history, gen)
  for _, e in ipairs(redis.call('LRANGE', history, 0, -1)) do
    if parse_kept(e) == gen then
      return true
    end
  end
  return false
end
-- drop_kept retires the kept archives from index 'from' of the history list on, and cuts the
-- list before them (from 0: deletes it).
local function drop_kept(readers, history, base, from, now)
  local l = redis.call('LRANGE', history, from, -1)
  for _, e in ipairs(l) do
    local gen, n = parse_kept(e)
    if gen then
      retire(readers, base, gen, tonumber(n), now)
    end
  end
  if from <= 0 then
    redis.call('DEL', history)
  elseif #l > 0 then
    redis.call('LTRIM', history, 0, from - 1)
  end
end
`

func newScript(body string) *redis.Script { return redis.NewScript(prelude + body) }

// beginScript registers a Save's generation as pending, with no chunk written yet.
//
//	KEYS: saves   ARGV: base, gen, lease_ms
var beginScript = newScript(`
redis.call('HSET', KEYS[1], ARGV[2], 0)
expire_at_least(KEYS[1], tonumber(ARGV[3]))
return 1
`)

// putCheckScript runs in a MULTI/EXEC transaction right after the SETs of chunks of a pending
// generation (with an expiry of lease_ms), so that the chunks' bytes go to SET and never through
// Lua. It raises the generation's count of chunk slots to last+1, or, if the generation is no
// longer registered (superseded, aborted or expired), deletes the chunks again and returns 0: no
// chunk can appear after its generation's chunks were deleted.
//
//	KEYS: saves, chunk keys…   ARGV: gen, last+1, lease_ms
var putCheckScript = newScript(`
local hw = redis.call('HGET', KEYS[1], ARGV[1])
if not hw then
  for i = 2, #KEYS do
    redis.call('DEL', KEYS[i])
  end
  return 0
end
if tonumber(hw) < tonumber(ARGV[2]) then
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
end
expire_at_least(KEYS[1], tonumber(ARGV[3]))
return 1
`)

// touchScript is a Save's heartbeat: it renews the expiry of the generation's registration and
// of the chunks written so far. It returns 1, or 0 if the generation is no longer registered.
//
//	KEYS: saves   ARGV: base, gen, lease_ms
var touchScript = newScript(`
local lease = tonumber(ARGV[3])
local hw = redis.call('HGET', KEYS[1], ARGV[2])
if not hw then
  return 0
end
for i = 0, tonumber(hw) - 1 do
  redis.call('PEXPIRE', chunk(ARGV[1], ARGV[2], i), lease)
end
expire_at_least(KEYS[1], lease)
return 1
`)

// commitScript makes a pending generation the session's archive, after checking that each of
// its chunks is there, and supersedes the other pending Saves (but the spared ones: those that
// the committing Store runs itself). With keep above 1 it pushes the previous archive onto the
// history list, else it retires it; it retires the kept archives beyond keep (all of them when
// the session had no archive: a history without a current archive is what an expiry left), and
// gives every kept archive's keys the expiry of the new one (Options.TTL, or none). It returns
// {code, detail}: {1} committed (also when a retried commit finds it already done), {0} the
// generation is not registered (overtaken, or expired), {-1, i} chunk i is missing (expired):
// nothing changed, and the generation's chunks are deleted; {-2} the Save is fenced (token
// above 0: a Lease's Save) and the lease is no longer the session's newest or was released:
// nothing changed, and the generation's chunks and registration are deleted. The fence is
// checked before anything is written, in the script that switches the meta key: no lease can
// be granted between the check and the switch.
//
//	KEYS: meta, saves, readers, history, lease
//	ARGV: base, gen, chunks, size, chunk_size, ttl_ms (0: none), keep, token (0: unfenced),
//	      spared gens…
var commitScript = newScript(`
local base, gen, n = ARGV[1], ARGV[2], tonumber(ARGV[3])
local ttl = tonumber(ARGV[6])
local hw = redis.call('HGET', KEYS[2], gen)
if not hw and redis.call('HGET', KEYS[1], 'gen') == gen then
  return {1}
end
if not fenced(KEYS[5], ARGV[8]) then
  if hw then
    del_chunks(base, gen, tonumber(hw))
    redis.call('HDEL', KEYS[2], gen)
  end
  return {-2}
end
if not hw then
  return {0}
end
hw = tonumber(hw)
for i = 0, n - 1 do
  local k = chunk(base, gen, i)
  if redis.call('EXISTS', k) == 0 then
    del_chunks(base, gen, math.max(n, hw))
    redis.call('HDEL', KEYS[2], gen)
    return {-1, i}
  end
  if ttl > 0 then
    redis.call('PEXPIRE', k, ttl)
  else
    redis.call('PERSIST', k)
  end
end
for i = n, hw - 1 do
  redis.call('DEL', chunk(base, gen, i))
end
local now = now_ms()
local old = redis.call('HMGET', KEYS[1], 'gen', 'chunks', 'size', 'chunk_size', 'saved_ms')
redis.call('HSET', KEYS[1], 'gen', gen, 'chunks', ARGV[3], 'size', ARGV[4], 'chunk_size', ARGV[5], 'saved_ms', now)
if ttl > 0 then
  redis.call('PEXPIRE', KEYS[1], ttl)
else
  redis.call('PERSIST', KEYS[1])
end
redis.call('HDEL', KEYS[2], gen)
local spare = {}
for j = 9, #ARGV do
  spare[ARGV[j]] = true
end
supersede(KEYS[2], base, spare)
local keep = tonumber(ARGV[7])
if not old[1] then
  drop_kept(KEYS[3], KEYS[4], base, 0, now)
elseif keep > 1 then
  redis.call('LPUSH', KEYS[4], kept_entry(old))
  drop_kept(KEYS[3], KEYS[4], base, keep - 1, now)
else
  retire(KEYS[3], base, old[1], tonumber(old[2]) or 0, now)
  drop_kept(KEYS[3], KEYS[4], base, 0, now)
end
for _, e in ipairs(redis.call('LRANGE', KEYS[4], 0, -1)) do
  local g, m = parse_kept(e)
  for i = 0, (tonumber(m) or 0) - 1 do
    if ttl > 0 then
      expire_at_least(chunk(base, g, i), ttl)
    else
      redis.call('PERSIST', chunk(base, g, i))
    end
  end
end
if ttl > 0 then
  redis.call('PEXPIRE', KEYS[4], ttl)
else
  redis.call('PERSIST', KEYS[4])
end
return {1}
`)

// abortScript removes a failed Save: its chunks and its pending entry.
//
//	KEYS: saves   ARGV: base, gen
var abortScript = newScript(`
local hw = redis.call('HGET', KEYS[1], ARGV[2])
if hw then
  del_chunks(ARGV[1], ARGV[2], tonumber(hw))
  redis.call('HDEL', KEYS[1], ARGV[2])
end
return 1
`)

// deleteScript deletes the session: it supersedes every pending Save, retires every kept
// archive and deletes the history list, deletes the meta key and retires the current
// generation. It returns 1 if there was an archive, else 0; or -2, having changed nothing, if
// it is fenced (token above 0: a Lease's Delete) and the lease is lost. It never touches the
// lease key.
//
//	KEYS: meta, saves, readers, history, lease   ARGV: base, token (0: unfenced)
var deleteScript = newScript(`
if not fenced(KEYS[5], ARGV[2]) then
  return -2
end
supersede(KEYS[2], ARGV[1], nil)
local now = now_ms()
drop_kept(KEYS[3], KEYS[4], ARGV[1], 0, now)
local old = redis.call('HMGET', KEYS[1], 'gen', 'chunks')
if not old[1] then
  return 0
end
redis.call('DEL', KEYS[1])
retire(KEYS[3], ARGV[1], old[1], tonumber(old[2]) or 0, now)
return 1
`)

// openScript starts an Extract or an ExtractVersion: it finds the archive, the current one (gen
// "") or the one of generation gen among the current one and the first keep-1 entries of the
// history list, and, in the same step, takes a reader lease on its generation, so that no
// commit or Delete deletes the chunks while they are read. If the archive expires
// (Options.TTL), its chunks are kept for the lease at least. It returns nil for a missing
// session or generation, else {gen, chunks, size, chunk_size}.
//
//	KEYS: meta, readers, history   ARGV: base, reader id, lease_ms, gen, keep
var openScript = newScript(`
local m = redis.call('HMGET', KEYS[1], 'gen', 'chunks', 'size', 'chunk_size')
if not m[1] then
  return false
end
if ARGV[4] ~= '' and ARGV[4] ~= m[1] then
  local found = false
  local keep = tonumber(ARGV[5])
  if keep > 1 then
    for _, e in ipairs(redis.call('LRANGE', KEYS[3], 0, keep - 2)) do
      local g, n, size, cs = parse_kept(e)
      if g == ARGV[4] then
        m, found = {g, n, size, cs}, true
        break
      end
    end
  end
  if not found then
    return false
  end
end
local lease = tonumber(ARGV[3])
local now = now_ms()
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
redis.call('ZADD', KEYS[2], now + lease, m[1] .. ':' .. ARGV[2])
expire_at_least(KEYS[2], lease)
if redis.call('PTTL', KEYS[1]) >= 0 then
  for i = 0, (tonumber(m[2]) or 0) - 1 do
    extend(chunk(ARGV[1], m[1], i), lease)
  end
end
return m
`)

// leaseScript is an Extract's heartbeat: it renews the reader lease and keeps the chunks not yet
// read (from index "from" on) for the lease at least. It returns 0 if the lease was lost.
//
//	KEYS: readers   ARGV: base, gen, reader id, lease_ms, from, chunks
var leaseScript = newScript(`
local member = ARGV[2] .. ':' .. ARGV[3]
if not redis.call('ZSCORE', KEYS[1], member) then
  return 0
end
local lease = tonumber(ARGV[4])
redis.call('ZADD', KEYS[1], now_ms() + lease, member)
expire_at_least(KEYS[1], lease)
for i = tonumber(ARGV[5]), tonumber(ARGV[6]) - 1 do
  extend(chunk(ARGV[1], ARGV[2], i), lease)
end
return 1
`)

// closeScript ends an Extract: it drops the reader lease and, if the generation was retired
// meanwhile (it is neither the current one nor kept in the history list) and no other lease
// holds it, deletes its chunks.
//
//	KEYS: meta, readers, history   ARGV: base, gen, reader id, chunks
var closeScript = newScript(`
local gen = ARGV[2]
redis.call('ZREM', KEYS[2], gen .. ':' .. ARGV[3])
if redis.call('HGET', KEYS[1], 'gen') == gen or is_kept(KEYS[3], gen) then
  return 1
end
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now_ms())
local prefix = gen .. ':'
for _, m in ipairs(redis.call('ZRANGE', KEYS[2], 0, -1)) do
  if string.sub(m, 1, #prefix) == prefix then
    return 1
  end
end
del_chunks(ARGV[1], gen, tonumber(ARGV[4]))
return 2
`)

// The lease scripts keep the session's lease hash, "<prefix>{<session>}:lease": token (the
// newest token granted, never lowered), owner, expires_ms (Unix ms, server clock) and released
// ("1" once its holder released it). The hash has no expiry and nothing deletes it, so tokens
// survive Delete, expiry of the archive and the lease's own expiry.

// acquireScript grants a lease for ttl_ms unless the newest one is live (not released and not
// expired by the server's clock). It returns {1, token, expires_ms} or, when refused,
// {0, holder's owner, holder's expires_ms}.
//
//	KEYS: lease   ARGV: owner, ttl_ms
var acquireScript = newScript(`
local now = now_ms()
local l = redis.call('HMGET', KEYS[1], 'token', 'owner', 'expires_ms', 'released')
local token = tonumber(l[1]) or 0
if token > 0 and l[4] == '0' and tonumber(l[3]) > now then
  return {0, l[2], l[3]}
end
token = token + 1
local expires = now + tonumber(ARGV[2])
redis.call('HSET', KEYS[1], 'token', token, 'owner', ARGV[1], 'expires_ms', expires, 'released', '0')
return {1, token, expires}
`)

// renewScript moves the expiry of lease token to ttl_ms from now, if it is still the newest and
// not released (expired or not). It returns 1, or 0 if the lease is lost.
//
//	KEYS: lease   ARGV: token, ttl_ms
var renewScript = newScript(`
if not fenced(KEYS[1], ARGV[1]) then
  return 0
end
redis.call('HSET', KEYS[1], 'expires_ms', now_ms() + tonumber(ARGV[2]))
return 1
`)

// releaseScript marks lease token released if it is still the newest, so that the next
// AcquireLease succeeds at once; a superseded or released lease changes nothing. It returns 1
// if it released the lease, else 0.
//
//	KEYS: lease   ARGV: token
var releaseScript = newScript(`
if not fenced(KEYS[1], ARGV[1]) then
  return 0
end
redis.call('HSET', KEYS[1], 'released', '1')
return 1
`)
