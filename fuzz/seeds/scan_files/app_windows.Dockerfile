# escape=`
# Windows images use the backtick as the escape character.
FROM mcr.microsoft.com/windows/servercore:ltsc2022 `
    AS base
RUN powershell -Command `
    Write-Host hello
FROM base
COPY --from=ghcr.io/corp/tools:1.4 C:\tools C:\tools
