"""The server-side steps of the Redis task queues: each one atomic, each one round trip.

Lua scripts rather than ``MULTI … EXEC`` because two steps must *decide* on the server:

* ``TAKE`` reads the first of several streams, in priority order, that has a task
  (``XREADGROUP`` per stream until one answers; ``COUNT 1``, or a few for a PE whose tasks
  are measured to be tiny, which the worker runs as one), so a worker never takes a task it
  will not run now, and moves the task from *queued* to *running* in the counters hash in
  the same step. When no stream has one, the worker waits in a blocking ``XREADGROUP``
  (``>``, ``COUNT 1``), which Redis serves to one waiting consumer per new entry: an idle
  pool does not wake all at once for every task.
* ``COMMIT`` is ``task_done``: the task's outputs (``XADD`` + backlog ``HINCRBY``), its
  reports, and the ``XACK``/``XDEL`` of the task(s), all or nothing — and only if this worker
  still owns them (``XPENDING`` for its consumer). A worker that stalled long enough
  for its task to be reclaimed and run elsewhere cannot add the outputs a second time.
* ``REQUEUE`` gives a dead worker's tasks back: either every task pending for one consumer
  (the driver, when it knows the worker is dead) or, run by live workers, every task idle
  longer than the claim time *whose worker's liveness key* (``alive:<worker>``, kept by its
  heartbeat process) *has expired*: a live worker's task is never taken, however long it
  runs. Each task is re-added with its delivery count plus one and the old entry
  acknowledged and deleted; a task that reached the maximum goes to the dead-letter stream instead.

Counters (one hash per run): ``b<key>`` tasks queued and not taken, ``r<key>`` taken and not
done. Entries are ``m`` (MAC), ``d`` (signed pickle) and, once redelivered, ``a`` (attempts).
"""

from __future__ import annotations

__all__ = ["TAKE", "COMMIT", "REQUEUE", "REGISTER", "GIVE_BACK", "ADOPT"]

# KEYS: counters, stream 1..n
# ARGV: group, consumer, field 1..n ('' for a control stream), then how many tasks 1..n
TAKE = """
local g, c = ARGV[1], ARGV[2]
local n = #KEYS - 1
for i = 1, n do
  local s = KEYS[i + 1]
  local r = redis.call('XREADGROUP', 'GROUP', g, c, 'COUNT', ARGV[2 + n + i], 'STREAMS', s, '>')
  if r then
    local es = r[1][2]
    local f = ARGV[2 + i]
    if f == '' then
      for _, e in ipairs(es) do
        redis.call('XACK', s, g, e[1])
        redis.call('XDEL', s, e[1])
      end
    else
      redis.call('HINCRBY', KEYS[1], 'b' .. f, -#es)
      redis.call('HINCRBY', KEYS[1], 'r' .. f, #es)
    end
    return {i, es, redis.call('HGETALL', KEYS[1])}
  end
end
return {0, {}, redis.call('HGETALL', KEYS[1])}
"""

# A taken entry goes back to the end of its queue as it was (delivery count unchanged):
# used by COMMIT (a refused commit) and GIVE_BACK.
_PUT_BACK = """
local function put_back(counters, s, g, f, id)
  local e = redis.call('XRANGE', s, id, id)
  redis.call('XACK', s, g, id)
  redis.call('XDEL', s, id)
  redis.call('HINCRBY', counters, 'r' .. f, -1)
  if #e > 0 then
    redis.call('XADD', s, '*', unpack(e[1][2]))
    redis.call('HINCRBY', counters, 'b' .. f, 1)
  end
end
"""

# KEYS: counters, reports, source stream (or reports), destination streams...
# ARGV: group, consumer, source field, number of task ids, the ids, number of puts,
#       per put: KEYS index, field, mac, data; then per report: mac, data
# If one of the tasks is no longer this worker's, nothing is added and the others go back
# to their queue (their delivery count unchanged); returns 0.
COMMIT = (
    _PUT_BACK
    + """
local g, c, sf, nid = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
local mine = {}
for j = 1, nid do
  local id = ARGV[4 + j]
  if #redis.call('XPENDING', KEYS[3], g, id, id, 1, c) > 0 then mine[#mine + 1] = id end
end
if #mine < nid then
  for _, id in ipairs(mine) do put_back(KEYS[1], KEYS[3], g, sf, id) end
  return 0
end
local a = 5 + nid
local np = tonumber(ARGV[a])
a = a + 1
for _ = 1, np do
  redis.call('XADD', KEYS[tonumber(ARGV[a])], '*', 'm', ARGV[a + 2], 'd', ARGV[a + 3])
  redis.call('HINCRBY', KEYS[1], 'b' .. ARGV[a + 1], 1)
  a = a + 4
end
while a < #ARGV do
  redis.call('XADD', KEYS[2], '*', 'm', ARGV[a], 'd', ARGV[a + 1])
  a = a + 2
end
for j = 1, nid do
  redis.call('XACK', KEYS[3], g, ARGV[4 + j])
  redis.call('XDEL', KEYS[3], ARGV[4 + j])
end
if nid > 0 then redis.call('HINCRBY', KEYS[1], 'r' .. sf, -nid) end
return 1
"""
)

# KEYS: counters, dead-letter stream, stream 1..n
# ARGV: group, mode ('consumer' or 'idle'), consumer, min idle ms, max attempts, field 1..n
# Returns {requeued fields, dead-lettered fields}.
REQUEUE = """
local g, mode, who, idle, maxa = ARGV[1], ARGV[2], ARGV[3], ARGV[4], tonumber(ARGV[5])
local prefix = string.sub(KEYS[1], 1, -2)  -- the counters hash is d4py:<run>:n
local moved, dead = {}, {}
for i = 1, #KEYS - 2 do
  local s, f = KEYS[i + 2], ARGV[5 + i]
  local ids = {}  -- {id, owner}; an owner ending in ':b' had not counted the task as running
  if mode == 'consumer' then
    for _, c in ipairs({who, who .. ':b'}) do
      for _, p in ipairs(redis.call('XPENDING', s, g, '-', '+', 1000, c)) do ids[#ids + 1] = {p[1], c} end
    end
  else
    for _, p in ipairs(redis.call('XPENDING', s, g, 'IDLE', idle, '-', '+', 100)) do
      local w = string.match(p[2], '^w(%d+)')
      if not w or redis.call('EXISTS', prefix .. 'alive:' .. w) == 0 then ids[#ids + 1] = {p[1], p[2]} end
    end
  end
  for _, pair in ipairs(ids) do
    local id = pair[1]
    local e = redis.call('XRANGE', s, id, id)
    redis.call('XACK', s, g, id)
    redis.call('XDEL', s, id)
    if string.sub(pair[2], -2) == ':b' then
      redis.call('HINCRBY', KEYS[1], 'b' .. f, -1)
    else
      redis.call('HINCRBY', KEYS[1], 'r' .. f, -1)
    end
    if #e > 0 then
      local fields, m, d, att = e[1][2], '', '', 0
      for j = 1, #fields, 2 do
        if fields[j] == 'm' then m = fields[j + 1]
        elseif fields[j] == 'd' then d = fields[j + 1]
        elseif fields[j] == 'a' then att = tonumber(fields[j + 1]) end
      end
      att = att + 1
      if att >= maxa then
        redis.call('XADD', KEYS[2], '*', 'k', f, 'a', att, 'm', m, 'd', d)
        dead[#dead + 1] = f
      else
        redis.call('XADD', s, '*', 'a', att, 'm', m, 'd', d)
        redis.call('HINCRBY', KEYS[1], 'b' .. f, 1)
        moved[#moved + 1] = f
      end
    end
  end
end
return {moved, dead}
"""

# KEYS: info, workers   ARGV: key prefix, group, ttl s, liveness ms
# A worker joining from another host: its id (-1 if the run is over), its control stream,
# its liveness key, all at once, so that a run being deleted cannot get new keys.
REGISTER = """
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
local w = redis.call('INCR', KEYS[2]) - 1
local ctl = ARGV[1] .. 'ctl:' .. w
if redis.call('EXISTS', ctl) == 0 then
  redis.call('XGROUP', 'CREATE', ctl, ARGV[2], '0', 'MKSTREAM')
end
redis.call('EXPIRE', ctl, ARGV[3])
redis.call('SET', ARGV[1] .. 'alive:' .. w, '1', 'PX', ARGV[4])
return w
"""

# KEYS: counters, stream   ARGV: group, consumer, field, entry id, 1 to keep it (0: give it back)
# An entry a blocking XREADGROUP handed to consumer '<c>:b' (not counted as taken yet): kept,
# it moves to consumer <c> and from queued to running in one step; else it goes back to the
# end of its queue, still counted as queued. 0 if it is no longer '<c>:b''s. A worker killed
# between its blocking read and this step leaves its task under '<c>:b', which REQUEUE
# gives back without touching the running count.
ADOPT = """
local g, c, f, id = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
if #redis.call('XPENDING', KEYS[2], g, id, id, 1, c .. ':b') == 0 then return 0 end
if ARGV[5] == '1' then
  redis.call('XCLAIM', KEYS[2], g, c, 0, id, 'JUSTID')
  redis.call('HINCRBY', KEYS[1], 'b' .. f, -1)
  redis.call('HINCRBY', KEYS[1], 'r' .. f, 1)
  return 1
end
local e = redis.call('XRANGE', KEYS[2], id, id)
redis.call('XACK', KEYS[2], g, id)
redis.call('XDEL', KEYS[2], id)
if #e > 0 then
  redis.call('XADD', KEYS[2], '*', unpack(e[1][2]))
else
  redis.call('HINCRBY', KEYS[1], 'b' .. f, -1)
end
return 1
"""

# KEYS: counters, stream   ARGV: group, consumer, field, entry id
# A task a worker took but will not run (a blocking read handed it more than one): back to
# the end of its queue, as it was (its delivery count unchanged), if it is still this worker's.
GIVE_BACK = (
    _PUT_BACK
    + """
local g, c, f, id = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
if #redis.call('XPENDING', KEYS[2], g, id, id, 1, c) == 0 then return 0 end
put_back(KEYS[1], KEYS[2], g, f, id)
return 1
"""
)
