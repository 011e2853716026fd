"""One place per chapter: the demos, views and panels each notebook calls.

| package / module          | chapter                                                   |
|---------------------------|-----------------------------------------------------------|
| ``ch00_start_here``       | 00: the machine, reading a timeline, the GIL              |
| ``ch00b_threads``         | 00b: threads, lost updates and a Lock, the convoy effect  |
| ``ch01_processes``        | 01: processes, start methods, exit codes, speed-up        |
| ``ch02_ipc``              | 02: queues, pipes, pickling, shared memory, managers      |
| ``ch03_locks``            | 03: lost updates, locks and the other primitives          |
| ``ch04_pools``            | 04: pools, chunksize, Amdahl's law, failures              |
| ``ch05_coroutines``       | 05: greenlets, gevent's API, monkey patching              |
| ``ch06_crawler``          | 06: a local site and a coroutine crawler                  |
| ``ch07_socket_server``    | 07: gevent servers against threads and asyncio            |
| ``ch08_choosing``         | 08: every model on every workload; a decision guide       |
| ``ch09_beyond_one_machine`` | 09: the same work on Dask                              |

Chapters sit on top: they use ``helpers.runners``, ``helpers.timeline``, ``helpers.course``,
``helpers.workloads`` and ``helpers.widgets``, and nothing below imports a chapter.
"""

__all__: list[str] = []  # nothing here: import the chapter's own package
