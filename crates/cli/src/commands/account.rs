//! `login`, `register` and `logout`.

use std::io::BufRead;

use clap::Args;

use crate::{credentials, progress::Output, Context, Fatal, EXIT_OK};

/// `vidconv login`.
#[derive(Debug, Args)]
pub struct LoginArgs {
    /// Your email
    pub email: String,

    /// Read the password from the first line of standard input instead of asking for it
    #[arg(long)]
    pub password_stdin: bool,

    /// Print the token on stdout instead of saving it (`export VIDCONV_TOKEN=$(vidconv login EMAIL --print)`)
    #[arg(long)]
    pub print: bool,
}

/// `vidconv register`.
#[derive(Debug, Args)]
pub struct RegisterArgs {
    /// Your email
    pub email: String,

    /// Read the password from the first line of standard input instead of asking for it
    #[arg(long)]
    pub password_stdin: bool,

    /// Only create the account; do not log in
    #[arg(long)]
    pub no_login: bool,
}

/// Logs in and saves the token (or prints it).
pub async fn login(context: &Context, args: LoginArgs, output: &Output) -> Result<u8, Fatal> {
    let password = password(&args.email, args.password_stdin, false)?;
    log_in(context, &args.email, &password, args.print, output).await
}

/// Creates the account, then logs in unless `--no-login`.
pub async fn register(context: &Context, args: RegisterArgs, output: &Output) -> Result<u8, Fatal> {
    let password = password(&args.email, args.password_stdin, true)?;
    context
        .anonymous()?
        .register(&args.email, &password)
        .await
        .map_err(|e| Fatal(format!("registration failed: {e}")))?;
    output.say(&format!("Account created for {}.", args.email));
    if args.no_login {
        return Ok(EXIT_OK);
    }
    log_in(context, &args.email, &password, false, output).await
}

/// Removes the saved token.
pub fn logout(context: &Context, output: &Output) -> Result<u8, Fatal> {
    let path = context.credentials_path()?;
    let removed = credentials::remove(path)
        .map_err(|e| Fatal(format!("cannot remove {}: {e}", path.display())))?;
    output.say(if removed {
        "Logged out: the saved token is removed."
    } else {
        "Not logged in: there was no saved token."
    });
    Ok(EXIT_OK)
}

async fn log_in(
    context: &Context,
    email: &str,
    password: &str,
    print: bool,
    output: &Output,
) -> Result<u8, Fatal> {
    let token = context
        .anonymous()?
        .login(email, password)
        .await
        .map_err(|e| Fatal(format!("login failed: {e}")))?;
    if print {
        output.say(&token);
        return Ok(EXIT_OK);
    }
    let path = context.credentials_path()?;
    let saved = credentials::Credentials {
        url: context.url.clone(),
        email: email.to_owned(),
        token,
    };
    credentials::save(path, &saved)
        .map_err(|e| Fatal(format!("cannot save the token in {}: {e}", path.display())))?;
    tracing::debug!(path = %path.display(), "token saved");
    output.say(&format!(
        "Logged in to {} as {email}; the token is saved in {} (valid for a day).",
        context.url,
        path.display()
    ));
    Ok(EXIT_OK)
}

/// The password: the first line of stdin, or asked on the terminal (twice when `confirm`).
fn password(email: &str, from_stdin: bool, confirm: bool) -> Result<String, Fatal> {
    let password = if from_stdin {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .map_err(|e| Fatal(format!("cannot read the password from stdin: {e}")))?;
        line.trim_end_matches(['\r', '\n']).to_owned()
    } else {
        let ask = |prompt: &str| {
            rpassword::prompt_password(prompt).map_err(|e| {
                Fatal(format!(
                    "cannot ask for the password ({e}); pipe it in with --password-stdin"
                ))
            })
        };
        let first = ask(&format!("Password for {email}: "))?;
        if confirm && ask("Again, to be sure: ")? != first {
            return Err(Fatal("the two passwords differ".into()));
        }
        first
    };
    if password.is_empty() {
        return Err(Fatal("the password is empty".into()));
    }
    Ok(password)
}
