import t from 'tap';
import { escapeHtml, preheaderOf, renderEmail } from '../src/template.js';

t.test('the template escapes <script>, quotes and ampersands, and keeps line breaks', async (t) => {
  const body = `Hi "Ann" & 'Bob',\n<script>alert("x")</script>\r\nsecond line\rthird`;
  const { text, html } = renderEmail({ subject: 'Q3 <report> & "notes"', body });
  t.equal(text, body, 'the plain-text part is the body, untouched');
  t.notMatch(html, /<script>/i, 'no live script tag');
  t.match(html, '&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;');
  t.match(html, 'Hi &quot;Ann&quot; &amp; &#39;Bob&#39;,<br>');
  t.match(html, 'second line<br>\nthird', 'CRLF, CR and LF all become <br>');
  t.match(html, '<title>Q3 &lt;report&gt; &amp; &quot;notes&quot;</title>');
});

t.test('the template is email-safe: table layout, inline CSS, 600 px, hidden preheader', async (t) => {
  const { html } = renderEmail({ subject: 's', body: 'First   line\nof the message that goes on' });
  t.match(html, /<table role="presentation" width="600"[^>]*style="[^"]*max-width:600px/);
  t.notMatch(html, /<style/i, 'no <style> block: every style is inline');
  t.notMatch(html, /<link/i);
  t.match(
    html,
    /<div style="display:none;[^"]*">First line of the message that goes on<\/div>/,
    'preheader is the flattened first words, hidden',
  );
});

t.test('the preheader is bounded and escaped', async (t) => {
  t.equal(preheaderOf('x'.repeat(500)).length, 140);
  const { html } = renderEmail({ subject: 's', body: '<b>bold</b>' });
  t.match(html, /display:none[^>]*>&lt;b&gt;bold&lt;\/b&gt;<\/div>/);
});

t.test('html_content is sent as is (trusted input); the text part is still the body', async (t) => {
  const own = '<html><body><p style="color:red">Mine <b>exactly</b></p></body></html>';
  const r = renderEmail({ subject: 's', body: 'plain version', htmlContent: own });
  t.equal(r.html, own);
  t.equal(r.text, 'plain version');
});

t.test('escapeHtml covers the five HTML-significant characters', async (t) => {
  t.equal(escapeHtml(`&<>"'`), '&amp;&lt;&gt;&quot;&#39;');
});
