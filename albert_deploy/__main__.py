from albert_deploy.cli import main

main()
