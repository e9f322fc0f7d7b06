from nqs_cli.cli import main

main()
