#!/bin/sh
# Runs the command given; under mpirun, rank 1 is stopped (SIGSTOP) after
# $STOP_AFTER seconds, as a hung or descheduled rank would be.
if [ "$OMPI_COMM_WORLD_RANK" = 1 ]; then
  (sleep "${STOP_AFTER:-2}"; kill -STOP $$) &
fi
exec "$@"
