/**
 * The email-safe HTML template (issue 7). Mail clients are not browsers: Outlook renders with
 * Word, Gmail strips <style> in many views, so the layout is nested tables with inline CSS, a
 * 600 px content column, and a hidden preheader (the preview line clients show after the
 * subject). The caller's text is HTML-escaped (& < > " ') with its line breaks kept as <br>, so
 * text can never become markup. A caller's own `html_content` bypasses this template and is
 * sent as is: it is trusted input (the API token holder is the sender), documented in README.
 * The plain-text part is always the caller's `body`, sent alongside the HTML.
 */

const ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

export function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ESCAPES[c] ?? c);
}

/** Escaped text with CRLF / CR / LF line breaks kept as <br>. */
export function textToHtml(s: string): string {
  return escapeHtml(s).replace(/\r\n|\r|\n/g, '<br>\n');
}

/** The preview line: the body's first words on one line, at most `max` characters. */
export function preheaderOf(body: string, max = 140): string {
  const flat = body.replace(/\s+/g, ' ').trim();
  return flat.length <= max ? flat : `${flat.slice(0, max - 1).trimEnd()}…`;
}

export interface RenderedEmail {
  text: string;
  html: string;
}

export function renderEmail(p: { subject: string; body: string; htmlContent?: string | null }): RenderedEmail {
  if (p.htmlContent) return { text: p.body, html: p.htmlContent };
  const font = "font-family:-apple-system,'Segoe UI',Helvetica,Arial,sans-serif";
  const html = `<!DOCTYPE html>
<html lang="en" xmlns="http://www.w3.org/1999/xhtml">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width,initial-scale=1">
<meta name="x-apple-disable-message-reformatting">
<title>${escapeHtml(p.subject)}</title>
</head>
<body style="margin:0;padding:0;background-color:#f4f5f7;">
<div style="display:none;max-height:0;overflow:hidden;mso-hide:all;font-size:1px;line-height:1px;color:#f4f5f7;opacity:0;">${escapeHtml(preheaderOf(p.body))}</div>
<table role="presentation" width="100%" cellpadding="0" cellspacing="0" border="0" style="background-color:#f4f5f7;">
<tr>
<td align="center" style="padding:24px 12px;">
<table role="presentation" width="600" cellpadding="0" cellspacing="0" border="0" style="width:100%;max-width:600px;background-color:#ffffff;border-radius:6px;">
<tr>
<td style="padding:32px;${font};font-size:16px;line-height:24px;color:#1f2328;">
${textToHtml(p.body)}
</td>
</tr>
</table>
</td>
</tr>
</table>
</body>
</html>
`;
  return { text: p.body, html };
}
