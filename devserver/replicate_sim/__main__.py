from devserver.replicate_sim.http import main

main()
