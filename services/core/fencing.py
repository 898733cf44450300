"""The fence every write of a pipeline's task passes: the record still carries the task's epoch and owner.

A task writes its pipeline's keys (heartbeat, state, results, preview) only while the record holds the
epoch it was dispatched with and its own owner name; once the manager re-dispatched the pipeline (a new
epoch), the old task cannot write a single thing more. Every such write is one Lua script that starts
with :func:`fence_lua`, so the rule has one home: KEYS[1] is the record, ARGV[1] the epoch, ARGV[2] the
owner. The scripts differ only in what they answer when the record is missing (Redis may have lost it:
the task may restore it) and when it belongs to another epoch or owner.
"""


def fence_lua(missing: str, fenced: str, extra_fields: tuple[str, ...] = (), before_checks: str = "") -> str:
    """Lua that leaves ``record`` = HMGET of epoch, owner and ``extra_fields`` (``record[3]``...), and returns
    ``missing`` when the record does not exist, ``fenced`` when it is another epoch's or owner's.
    ``before_checks`` runs between the read and the checks (e.g. a value both answers need)."""
    fields = ", ".join(f"'{name}'" for name in ("epoch", "owner", *extra_fields))
    return (f"local record = redis.call('HMGET', KEYS[1], {fields})\n"
            f"{before_checks}"
            f"if not record[1] then return {missing} end\n"
            f"if tonumber(record[1]) ~= tonumber(ARGV[1]) or record[2] ~= ARGV[2] then return {fenced} end\n")
