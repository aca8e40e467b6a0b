// OutboxListener is header-only; see wakeup.h.
