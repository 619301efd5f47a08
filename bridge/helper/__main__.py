"""`python -m bridge.helper MAX_CONNECTIONS TIMEOUT MAX_BYTES`: the HTTP helper process."""

from bridge.helper import main

main()
