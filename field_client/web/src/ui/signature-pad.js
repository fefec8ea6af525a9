// A signature drawn with a finger or stylus on a canvas (pointer events), exported as a PNG.
import { LitElement, html } from 'lit';

class SignaturePad extends LitElement {
  createRenderRoot() { return this; }

  constructor() {
    super();
    this.strokes = 0;
    this._drawing = false;
  }

  render() {
    return html`<canvas class="sigpad" data-testid="signature-canvas"
      @pointerdown=${this._down} @pointermove=${this._move} @pointerup=${this._up} @pointercancel=${this._up}
      @pointerleave=${this._up}></canvas>`;
  }

  firstUpdated() {
    this.canvas = this.querySelector('canvas');
    this._size();
    this._observer = new ResizeObserver(() => this._size());
    this._observer.observe(this.canvas);
  }

  disconnectedCallback() {
    super.disconnectedCallback();
    this._observer?.disconnect();
  }

  _size() {
    const rect = this.canvas.getBoundingClientRect();
    const ratio = window.devicePixelRatio || 1;
    const width = Math.max(1, Math.round(rect.width * ratio));
    const height = Math.max(1, Math.round(rect.height * ratio));
    if (this.canvas.width === width && this.canvas.height === height) return;
    // Resizing clears a canvas: keep what was drawn.
    const previous = this.strokes ? this.canvas.toDataURL() : null;
    this.canvas.width = width;
    this.canvas.height = height;
    const context = this._context();
    context.fillStyle = '#fff';
    context.fillRect(0, 0, width, height);
    if (previous) {
      const image = new Image();
      image.onload = () => context.drawImage(image, 0, 0, width, height);
      image.src = previous;
    }
  }

  _context() {
    const context = this.canvas.getContext('2d');
    context.lineWidth = 2.6 * (window.devicePixelRatio || 1);
    context.lineCap = 'round';
    context.lineJoin = 'round';
    context.strokeStyle = '#111';
    return context;
  }

  _point(event) {
    const rect = this.canvas.getBoundingClientRect();
    return [(event.clientX - rect.left) * (this.canvas.width / rect.width),
      (event.clientY - rect.top) * (this.canvas.height / rect.height)];
  }

  _down(event) {
    event.preventDefault();
    this.canvas.setPointerCapture?.(event.pointerId);
    this._drawing = true;
    const context = this._context();
    const [x, y] = this._point(event);
    context.beginPath();
    context.moveTo(x, y);
    context.lineTo(x + 0.1, y + 0.1);
    context.stroke();
    this._last = [x, y];
  }

  _move(event) {
    if (!this._drawing) return;
    event.preventDefault();
    const context = this._context();
    const [x, y] = this._point(event);
    context.beginPath();
    context.moveTo(...this._last);
    context.lineTo(x, y);
    context.stroke();
    this._last = [x, y];
  }

  _up() {
    if (this._drawing) {
      this.strokes += 1;
      this.dispatchEvent(new CustomEvent('stroke', { bubbles: true }));
    }
    this._drawing = false;
  }

  get empty() {
    return this.strokes === 0;
  }

  clear() {
    this.strokes = 0;
    const context = this._context();
    context.fillStyle = '#fff';
    context.fillRect(0, 0, this.canvas.width, this.canvas.height);
  }

  toBlob() {
    return new Promise((resolve) => this.canvas.toBlob(resolve, 'image/png'));
  }
}
customElements.define('signature-pad', SignaturePad);
