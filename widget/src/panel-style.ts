/** The panel's look, in its chunk. The frame's size and place are the launcher's (no shift when it opens). */

export const CLOSE_ICON =
  '<svg viewBox="0 0 24 24" aria-hidden="true"><path d="M19 6.4 17.6 5 12 10.6 6.4 5 5 6.4 10.6 12 5 17.6 6.4 19 12 13.4 17.6 19 19 17.6 13.4 12z"/></svg>';
export const THUMB_ICON =
  '<svg viewBox="0 0 24 24" aria-hidden="true"><path d="M1 21h4V9H1v12zm22-11a2 2 0 0 0-2-2h-6.3l1-4.6v-.3c0-.4-.2-.8-.5-1.1L14.2 1 7.6 7.6C7.2 8 7 8.5 7 9v10a2 2 0 0 0 2 2h9c.8 0 1.5-.5 1.8-1.2l3-7c.1-.3.2-.5.2-.8v-2z"/></svg>';

export const STYLE = `header{display:flex;align-items:center;gap:8px;padding:12px 12px 12px 16px;background:var(--accent);color:#fff}
h2{font-size:16px;margin:0;flex:1}
.status{font-size:12px;opacity:.9}
button{font:inherit;cursor:pointer}
.close{background:none;border:0;color:inherit;padding:4px;border-radius:6px;display:grid}
.close svg{width:20px;height:20px;fill:currentColor}
:focus-visible{outline:2px solid var(--accent);outline-offset:2px}
header :focus-visible{outline-color:#fff}
.log{flex:1;overflow-y:auto;margin:0;padding:12px;list-style:none;display:flex;flex-direction:column;gap:10px}
.log>li{max-width:85%;padding:8px 12px;border-radius:12px;white-space:pre-wrap;overflow-wrap:anywhere}
.user{align-self:flex-end;background:var(--accent);color:#fff}
.assistant{align-self:flex-start;background:#f1f3f5}
.pending{opacity:.7}
.stale .text:after{content:" …"}
.sources{margin:6px 0 0;padding:6px 0 0;border-top:1px solid #dde;list-style:none;font-size:12px;color:#555}
.sources:before{content:"Sources: "}
.sources li{display:inline}
.sources li+li:before{content:", "}
.rate{display:flex;gap:4px;margin-top:4px}
.rate button{background:none;border:1px solid transparent;border-radius:6px;padding:2px 4px;color:#777;display:grid}
.rate button:hover{border-color:#ccd}
.rate svg{width:16px;height:16px;fill:currentColor}
.rate [data-rating=DOWN] svg{transform:rotate(180deg)}
.rate [aria-pressed=true]{color:var(--accent);border-color:var(--accent)}
.typing{margin:0 16px 6px;font-size:13px;color:#555}
.typing span{display:inline-block;animation:dots 1s steps(4) infinite;overflow:hidden;vertical-align:bottom;width:1ch}
@keyframes dots{from{width:0}to{width:1.2ch}}
.error{margin:0 16px;font-size:13px;color:#b00020}
.error:empty{display:none}
form{display:flex;gap:8px;padding:10px;border-top:1px solid #e3e5e8}
textarea{flex:1;resize:none;font:inherit;padding:8px;border:1px solid #c8ccd2;border-radius:8px}
form button{border:0;border-radius:8px;padding:0 14px;background:var(--accent);color:#fff}
.sr{position:absolute;width:1px;height:1px;overflow:hidden;clip:rect(0 0 0 0);white-space:nowrap}`;
