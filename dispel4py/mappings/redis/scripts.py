"""The server-side steps of the Redis task queues: each one atomic, each one round trip.

Lua scripts rather than ``MULTI … EXEC`` because two steps must *decide* on the server:

* ``TAKE`` reads the first of several streams, in priority order, that has a task
  (``XREADGROUP`` per stream until one answers; ``COUNT 1``, or a few for a PE whose tasks
  are measured to be short, which the worker runs as one, up to its fair share of the
  queue), so a worker never takes a task it will not run now. When no stream has one, the
  worker waits in a blocking ``XREADGROUP`` (``>``, ``COUNT 1``), which Redis serves to
  one waiting consumer per new entry: an idle pool does not wake all at once for every task.
* ``COMMIT`` is ``task_done``: the task's outputs (``XADD``, and those it spilled to its
  staging stream moved to their queues), its reports, and the ``XACK``/``XDEL`` of the
  task(s), all or nothing — and only if this worker still owns them (``XPENDING`` for its
  consumer) and no task of that identity was committed before (the run's ``used`` set).
  It also adds the number of reports it wrote to the worker's field of the ``sent`` hash,
  so that the driver can tell a report deleted unread from one never sent (``audit.py``). A
  worker that stalled long enough for its task to be reclaimed and run elsewhere cannot add
  the outputs a second time, nor can a copy of a task entry (a replay): its staging stream
  is deleted, the copy is dropped, and the worker reports it.
* ``REQUEUE`` gives a dead worker's tasks back: either every task pending for one consumer
  (the driver, when it knows the worker is dead) or, run by live workers, every task idle
  longer than the claim time *whose worker's liveness key* (``alive:<worker>``, kept by its
  heartbeat process) *has expired*: a live worker's task is never taken, however long it
  runs. Each task is re-added with its delivery count plus one and the old entry
  acknowledged and deleted; a task that reached the maximum goes to the dead-letter stream instead.
* ``COUNTS``: tasks queued and running per queue, derived from the streams themselves
  (``XLEN`` minus the pending entries, and the pending entries): there is no counter that a
  client without the key could set to a value that makes the run wait forever. (Entries a
  stranger adds are counted until a worker takes them and drops them unread.)

Entries are ``i`` (identity, ``sender:sequence``), ``m`` (MAC over the run, the stream, the
identity and the data), ``d`` (signed pickle) and, once redelivered, ``a`` (attempts).
"""

from __future__ import annotations

__all__ = ["TAKE", "COMMIT", "REQUEUE", "REGISTER", "GIVE_BACK", "COUNTS", "CREATE_INFO"]

# the counts of KEYS[first..]: per stream, tasks queued (XLEN - pending), tasks running (pending)
_COUNT = """
local function counts(g, first)
  local out = {}
  for i = first, #KEYS do
    local s = KEYS[i]
    local pending = redis.call('XPENDING', s, g)[1]
    out[#out + 1] = redis.call('XLEN', s) - pending
    out[#out + 1] = pending
  end
  return out
end
"""

# KEYS: the instance streams (counted)   ARGV: group
COUNTS = _COUNT + "return counts(ARGV[1], 1)"

# KEYS: stream 1..n, then every instance stream (counted, if ARGV[4] is '1')
# ARGV: group, consumer, n, count?, control flag 1..n ('1' for a control stream), how many tasks
# 1..n, the workers sharing each stream 1..n (several tasks are taken only up to a fair share
# of a shared queue, so that the last tasks of a stage spread over the workers instead of going
# to a few; a pinned instance's stream has one reader)
TAKE = (
    _COUNT
    + """
local g, c, n = ARGV[1], ARGV[2], tonumber(ARGV[3])
local function counted()
  if ARGV[4] == '1' then return counts(g, n + 1) end
  return {}
end
for i = 1, n do
  local s = KEYS[i]
  local want, share = tonumber(ARGV[4 + n + i]), tonumber(ARGV[4 + 2 * n + i])
  if want > 1 and share > 1 then
    local queued = redis.call('XLEN', s) - redis.call('XPENDING', s, g)[1]
    want = math.max(1, math.min(want, math.floor(queued / share)))
  end
  local r = redis.call('XREADGROUP', 'GROUP', g, c, 'COUNT', want, 'STREAMS', s, '>')
  if r then
    local es = r[1][2]
    if ARGV[4 + i] == '1' then
      for _, e in ipairs(es) do
        redis.call('XACK', s, g, e[1])
        redis.call('XDEL', s, e[1])
      end
    end
    return {i, es, counted()}
  end
end
return {0, {}, counted()}
"""
)

# A taken entry goes back to the end of its queue as it was (delivery count unchanged):
# used by COMMIT (a refused commit) and GIVE_BACK.
_PUT_BACK = """
local function put_back(s, g, id)
  local e = redis.call('XRANGE', s, id, id)
  redis.call('XACK', s, g, id)
  redis.call('XDEL', s, id)
  if #e > 0 then redis.call('XADD', s, '*', unpack(e[1][2])) end
end
"""

# Moves the entries of a staging stream (fields s: destination, i, m, d) to their queues.
_UNSTAGE = """
local function unstage(stage)
  local from = '-'
  while true do
    local es = redis.call('XRANGE', stage, from, '+', 'COUNT', 64)
    if #es == 0 then break end
    for _, e in ipairs(es) do
      local f, dest = e[2], nil
      local kept = {}
      for j = 1, #f, 2 do
        if f[j] == 's' then dest = f[j + 1] else kept[#kept + 1] = f[j]; kept[#kept + 1] = f[j + 1] end
      end
      if dest then redis.call('XADD', dest, '*', unpack(kept)) end
      from = '(' .. e[1]
    end
  end
  redis.call('DEL', stage)
end
"""

# KEYS: used, reports, source stream (or reports), staging stream, sent, destination streams...
# ARGV: group, consumer, number of task ids, the ids, their identities, staged ('1'/'0'),
#       number of puts, per put: KEYS index, identity, mac, data; then per report: identity, mac, data
# Returns 1 when done. If a task is no longer this worker's, or its identity was used
# before (a copy), nothing is added, the staging stream is deleted, the copies are dropped
# and the other tasks go back to their queue (delivery count unchanged); returns {0, the
# identities dropped as copies...}.
COMMIT = (
    _PUT_BACK
    + _UNSTAGE
    + """
local g, c, nid = ARGV[1], ARGV[2], tonumber(ARGV[3])
local mine, copies, copied = {}, {}, {0}
for j = 1, nid do
  local id, ident = ARGV[3 + j], ARGV[3 + nid + j]
  if #redis.call('XPENDING', KEYS[3], g, id, id, 1, c) > 0 then
    if redis.call('SISMEMBER', KEYS[1], ident) == 1 then
      copies[#copies + 1] = id
      copied[#copied + 1] = ident
    else
      mine[#mine + 1] = id
    end
  end
end
if #mine < nid then
  for _, id in ipairs(copies) do
    redis.call('XACK', KEYS[3], g, id)
    redis.call('XDEL', KEYS[3], id)
  end
  for _, id in ipairs(mine) do put_back(KEYS[3], g, id) end
  redis.call('DEL', KEYS[4])
  return copied
end
local a = 4 + 2 * nid
if ARGV[a] == '1' then unstage(KEYS[4]) end
local np = tonumber(ARGV[a + 1])
a = a + 2
for _ = 1, np do
  redis.call('XADD', KEYS[tonumber(ARGV[a])], '*', 'i', ARGV[a + 1], 'm', ARGV[a + 2], 'd', ARGV[a + 3])
  a = a + 4
end
local nrep = 0
while a < #ARGV do
  redis.call('XADD', KEYS[2], '*', 'i', ARGV[a], 'm', ARGV[a + 1], 'd', ARGV[a + 2])
  a = a + 3
  nrep = nrep + 1
end
if nrep > 0 and redis.call('EXISTS', KEYS[5]) == 1 then redis.call('HINCRBY', KEYS[5], c, nrep) end
for j = 1, nid do
  redis.call('XACK', KEYS[3], g, ARGV[3 + j])
  redis.call('XDEL', KEYS[3], ARGV[3 + j])
  redis.call('SADD', KEYS[1], ARGV[3 + nid + j])
end
return 1
"""
)

# KEYS: dead-letter stream, stream 1..n
# ARGV: group, mode ('consumer' or 'idle'), consumer, min idle ms, max attempts, field 1..n
# Returns {requeued fields, dead-lettered fields}.
REQUEUE = """
local g, mode, who, idle, maxa = ARGV[1], ARGV[2], ARGV[3], ARGV[4], tonumber(ARGV[5])
local prefix = string.sub(KEYS[1], 1, -5)  -- the dead-letter stream is d4py:<run>:dead
local moved, dead = {}, {}
for i = 1, #KEYS - 1 do
  local s, f = KEYS[i + 1], ARGV[5 + i]
  local ids = {}
  if mode == 'consumer' then
    for _, p in ipairs(redis.call('XPENDING', s, g, '-', '+', 1000, who)) do ids[#ids + 1] = p[1] end
  else
    for _, p in ipairs(redis.call('XPENDING', s, g, 'IDLE', idle, '-', '+', 100)) do
      local w = string.match(p[2], '^w(%d+)$')
      if not w or redis.call('EXISTS', prefix .. 'alive:' .. w) == 0 then ids[#ids + 1] = p[1] end
    end
  end
  for _, id in ipairs(ids) do
    local e = redis.call('XRANGE', s, id, id)
    redis.call('XACK', s, g, id)
    redis.call('XDEL', s, id)
    if #e > 0 then
      local fields, ident, m, d, att = e[1][2], '', '', '', 0
      for j = 1, #fields, 2 do
        if fields[j] == 'm' then m = fields[j + 1]
        elseif fields[j] == 'd' then d = fields[j + 1]
        elseif fields[j] == 'i' then ident = fields[j + 1]
        elseif fields[j] == 'a' then att = tonumber(fields[j + 1]) end
      end
      att = att + 1
      if att >= maxa then
        redis.call('XADD', KEYS[1], '*', 'k', f, 'a', att, 'i', ident, 'm', m, 'd', d)
        dead[#dead + 1] = f
      else
        redis.call('XADD', s, '*', 'a', att, 'i', ident, 'm', m, 'd', d)
        moved[#moved + 1] = f
      end
    end
  end
end
return {moved, dead}
"""

# KEYS: info, workers   ARGV: key prefix, group, ttl s, liveness ms, local workers, slots
# A worker joining from another host: its id (-1 if the run is over, -2 if the id is in
# use: someone set the workers counter back), its control stream, its liveness key, all at
# once, so that a run being deleted cannot get new keys.
REGISTER = """
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
local w = redis.call('INCR', KEYS[2]) - 1
local ctl = ARGV[1] .. 'ctl:' .. w
local made = redis.call('EXISTS', ctl) == 1
if w < tonumber(ARGV[5]) or redis.call('EXISTS', ARGV[1] .. 'alive:' .. w) == 1
    or (made and w >= tonumber(ARGV[6])) then
  return -2
end
if not made then redis.call('XGROUP', 'CREATE', ctl, ARGV[2], '0', 'MKSTREAM') end
redis.call('EXPIRE', ctl, ARGV[3])
redis.call('SET', ARGV[1] .. 'alive:' .. w, '1', 'PX', ARGV[4])
return w
"""

# KEYS: stream   ARGV: group, consumer, entry id
# A task a worker took but will not run (a blocking read handed it more than one): back to
# the end of its queue, as it was (its delivery count unchanged), if it is still this worker's.
GIVE_BACK = (
    _PUT_BACK
    + """
local g, c, id = ARGV[1], ARGV[2], ARGV[3]
if #redis.call('XPENDING', KEYS[1], g, id, id, 1, c) == 0 then return 0 end
put_back(KEYS[1], g, id)
return 1
"""
)

# the run's info key, made with its TTL in one step (a driver killed in between would leave
# a key that never expires), only if no run of this id is in progress
CREATE_INFO = """
if redis.call('HSETNX', KEYS[1], 'meta', ARGV[1]) == 0 then return 0 end
redis.call('EXPIRE', KEYS[1], ARGV[2])
return 1
"""
