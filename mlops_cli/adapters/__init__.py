"""One module per outside system (git, Docker, SMTP, webhooks, Jenkins): its errors are translated there."""
