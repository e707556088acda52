"""README "6. Mailbox Introspection" (with an actor to inspect)."""

import iris
rt = iris.Runtime()
pid = rt.spawn(lambda msg: None)

size = rt.mailbox_size(pid)
print(f"Mailbox size for {pid}: {size}")
