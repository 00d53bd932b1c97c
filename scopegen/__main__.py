from scopegen.cli import main

main()
