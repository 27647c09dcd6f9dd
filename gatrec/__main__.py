from gatrec.cli import main

main()
