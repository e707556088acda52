"""README "4. Structured System Messages".

The README reads the messages of an ``observer_pid`` made earlier; the first lines make one
that monitors an actor which then crashes.
"""

import iris

rt = iris.Runtime()
observer_pid = rt.spawn_observed_handler()
worker = rt.spawn(lambda msg: 1 / 0)
rt.monitor(observer_pid, worker)
rt.send(worker, b"divide")
rt.join(worker, timeout=10)

messages = rt.get_messages(observer_pid)
for msg in messages:
    if isinstance(msg, iris.PySystemMessage):
        if msg.type_name == "EXIT":
            print(f"Actor {msg.target_pid} has crashed!")
