import { LitElement, html } from 'lit';

class FieldApp extends LitElement {
  createRenderRoot() { return this; }

  render() {
    return html`<header class="bar"><h1>执法检查</h1></header><main><p>…</p></main>`;
  }
}
customElements.define('field-app', FieldApp);
