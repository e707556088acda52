"""README "7. Exit Reasons (Structured)".

The README reads the messages of a ``supervisor_pid`` made earlier; the first lines make an
observer linked to three actors that exit Normal, Killed and Crash.
"""

import iris

rt = iris.Runtime()
supervisor_pid = rt.spawn_observed_handler()
finishes = rt.spawn_with_mailbox(lambda mailbox: mailbox.recv())
stopped = rt.spawn(lambda msg: None)
crashes = rt.spawn(lambda msg: {}[msg])
for pid in (finishes, stopped, crashes):
    rt.link(supervisor_pid, pid)
rt.send(finishes, b"done")
rt.stop(stopped)
rt.send(crashes, b"missing key")
for pid in (finishes, stopped, crashes):
    rt.join(pid, timeout=10)

for msg in rt.get_messages(supervisor_pid):
    if isinstance(msg, iris.PySystemMessage) and msg.type_name == 'EXIT':
        print('from:', msg.from_pid)
        print('target:', msg.target_pid)
        print('reason:', msg.reason)        # e.g. 'Normal' | 'Panic' | 'Killed'
        print('metadata:', msg.metadata)    # optional dict/bytes with extra info
