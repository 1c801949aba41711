// stpr compare: before/after viewer. Everything is in this page; nothing is fetched from the network.
// State for people and tests: window.stprCompare.state (see S below).
(() => {
  'use strict';
  const D = JSON.parse(document.getElementById('stpr-data').textContent);
  const $ = (id) => document.getElementById(id);
  const clamp = (x, lo, hi) => Math.min(hi, Math.max(lo, x));
  const AB = ['A', 'B'];
  const sides = [D.a, D.b];
  const still = D.a.kind === 'image';
  const dur = (s) => (s.kind === 'video' ? s.frames / s.fps : 0);
  const master = dur(D.b) > dur(D.a) ? 1 : 0;        // the longer video drives the clock
  const M = sides[master];
  const stage = $('stage'), handle = $('handle'), curves = $('curves'), seekBar = $('seek');
  const panes = [$('paneA'), $('paneB')], contents = [$('contentA'), $('contentB')];
  const S = {
    ready: false, error: null, still,
    view: 'wipe',          // 'wipe' | 'side' | 'toggle'
    wipe: 0.5,             // wipe position, fraction of the view's width (A left of it, B right)
    shown: 'B',            // toggle view: which side is showing
    zoom: 1, panX: 0, panY: 0,
    region: null,          // visible part of the picture, fractions {x0, y0, x1, y1} (same for A and B)
    paused: true, seeking: 0,
    fps: still ? null : M.fps, frames: still ? 1 : M.frames, duration: dur(M),
    time: 0,               // clock in seconds (start of the current frame when paused)
    frame: 0,              // frame index of the clock
    frameIndexA: still ? 0 : null, frameIndexB: still ? 0 : null,  // frames the videos present
    presentedA: 0, presentedB: 0,
    proxy: !!(D.a.proxy || D.b.proxy),
  };
  let els = [null, null];
  let vids = [];
  let fit = { w: 1, h: 1, pw: 1, ph: 1, boxes: [] };

  // ------------------------------------------------------------------ header
  document.title = D.title + ' · stpr compare';
  const fmtFps = (s) => (s.fps ? (+s.fps.toFixed(3)) + ' fps' : '');
  sides.forEach((s, i) => {
    $('name' + AB[i]).textContent = s.name;
    const bits = [s.label, s.width + '×' + s.height];
    if (s.kind === 'video') bits.push(fmtFps(s), s.frames + ' frame' + (s.frames === 1 ? '' : 's'));
    else bits.push('still image', 'mean luma ' + s.luma[0].toFixed(1));
    $('meta' + AB[i]).textContent = bits.join(' · ');
    $('label' + AB[i]).textContent = AB[i] + ' · ' + s.label;
  });
  const notes = [];
  sides.forEach((s, i) => {
    if (s.proxy) {
      notes.push(`${AB[i]} is ${s.width}×${s.height}; the page ${s.kind === 'video' ? 'plays a' : 'shows a'} ` +
                 `${s.proxyWidth}×${s.proxyHeight} proxy${s.kind === 'video' ? ' (H.264)' : ''}, so zoomed pixels ` +
                 `are the proxy's, not the original's.`);
    }
  });
  if (Math.abs(D.a.width / D.a.height - D.b.width / D.b.height) > 0.01)
    notes.push('A and B differ in shape: B is stretched to A\'s frame.');
  if (!still && Math.abs(D.a.fps - D.b.fps) > 1e-6)
    notes.push(`A and B differ in frame rate (${fmtFps(D.a)} / ${fmtFps(D.b)}): they are synced by time.`);
  if (!still && D.a.frames !== D.b.frames)
    notes.push(`A has ${D.a.frames} frames, B ${D.b.frames}.`);
  $('notes').textContent = notes.join(' ');
  if (still) document.body.classList.add('still');

  // ------------------------------------------------------------------ media
  function b64Blob(text, mime) {
    const bin = atob(text.trim());
    const bytes = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
    return URL.createObjectURL(new Blob([bytes], { type: mime }));
  }

  function load(s, i) {
    const url = s.src || b64Blob($('stpr-media-' + AB[i].toLowerCase()).textContent, s.mime);
    return new Promise((resolve, reject) => {
      if (s.kind === 'image') {
        const img = new Image();
        img.onload = () => resolve(img);
        img.onerror = () => reject(new Error(`cannot show ${s.name}`));
        img.alt = s.name;
        img.src = url;
        return;
      }
      const v = document.createElement('video');
      v.muted = true; v.playsInline = true; v.preload = 'auto'; v.disableRemotePlayback = true;
      v.addEventListener('loadeddata', () => resolve(v), { once: true });
      v.addEventListener('error', () => reject(new Error(
        `this browser cannot play ${s.name} (H.264 in MP4)` + (v.error ? ': ' + v.error.message : ''))), { once: true });
      v.src = url;
    });
  }

  function watchFrames(v, i) {
    const key = 'frameIndex' + AB[i], fps = sides[i].fps;
    if ('requestVideoFrameCallback' in v) {
      const cb = (now, meta) => {
        S[key] = Math.round(meta.mediaTime * fps);
        S['presented' + AB[i]] = meta.presentedFrames;
        if (S.paused) drawCurves();
        v.requestVideoFrameCallback(cb);
      };
      v.requestVideoFrameCallback(cb);
    }
    // Once a seek is done, currentTime (the middle of a frame, see seekFrame) names the frame too:
    // the only source without per-frame callbacks, and a backstop where a paused video's
    // callback does not come after a seek.
    v.addEventListener('seeked', () => { S[key] = Math.floor(v.currentTime * fps + 1e-6); });
  }

  // ------------------------------------------------------------------ clock
  function setTime(v, t) {
    return new Promise((resolve) => {
      if (Math.abs(v.currentTime - t) < 1e-7 && !v.seeking) { resolve(); return; }
      v.addEventListener('seeked', () => resolve(), { once: true });
      v.currentTime = t;
    });
  }

  // Show frame k of the clock in both: seek each video to the middle of the frame it has at that
  // moment (the middle, so no rounding can land on the frame before).
  function seekFrame(k) {
    if (still) return Promise.resolve();
    k = clamp(Math.round(k), 0, S.frames - 1);
    if (!S.paused) pause(false);
    S.frame = k;
    S.time = k / S.fps;
    seekBar.value = k;
    S.seeking++;
    const t = (k + 0.5) / S.fps;
    const jobs = vids.map((v, i) => {
      const s = sides[i];
      const own = clamp(Math.floor(t * s.fps), 0, s.frames - 1);
      return setTime(v, (own + 0.5) / s.fps);
    });
    drawCurves();
    return Promise.all(jobs).then(() => { S.seeking--; drawCurves(); });
  }

  function step(d) { return seekFrame(S.frame + d); }

  function play() {
    if (still || !S.paused || !S.ready) return;
    const start = S.frame >= S.frames - 1 ? 0 : S.frame;
    const go = () => {
      S.paused = false;
      vids.forEach((v) => v.play().catch((e) => { S.error = String(e); pause(); }));
      $('play').textContent = '❚❚';
      requestAnimationFrame(tick);
    };
    if (start !== S.frame) seekFrame(start).then(go); else go();
  }

  function pause(snap = true) {
    if (still || S.paused) return;
    S.paused = true;
    vids.forEach((v) => { v.pause(); v.playbackRate = 1; });
    $('play').textContent = '▶';
    const k = clamp(Math.floor(vids[master].currentTime * S.fps + 1e-6), 0, S.frames - 1);
    S.frame = k;
    if (snap) seekFrame(k);  // both land on the same frame, exactly
  }

  function togglePlay() { if (S.paused) play(); else pause(); }

  function tick() {
    if (S.paused) return;
    const m = vids[master], o = vids[1 - master], os = sides[1 - master];
    S.time = m.currentTime;
    S.frame = clamp(Math.floor(S.time * S.fps + 1e-6), 0, S.frames - 1);
    seekBar.value = S.frame;
    // the other video follows the clock: nudged by its rate, re-seeked if it drifts over a frame
    const target = Math.min(m.currentTime, (os.frames - 0.5) / os.fps);
    const drift = target - o.currentTime;
    if (!o.seeking) {
      if (Math.abs(drift) > 1 / os.fps) { o.currentTime = target; o.playbackRate = 1; }
      else o.playbackRate = clamp(1 + drift * 4, 0.9, 1.1);
    }
    if (o.paused && !o.ended && target < (os.frames - 0.5) / os.fps) o.play().catch(() => {});
    drawCurves();
    if (m.ended) { pause(false); seekFrame(S.frames - 1); return; }
    requestAnimationFrame(tick);
  }

  // ------------------------------------------------------------------ layout, wipe, zoom
  function layout() {
    const W = stage.clientWidth, H = stage.clientHeight, gap = 6;
    const boxes = S.view === 'side'
      ? [[0, 0, (W - gap) / 2, H], [(W + gap) / 2, 0, (W - gap) / 2, H]]
      : [[0, 0, W, H], [0, 0, W, H]];
    const pw = boxes[0][2], ph = boxes[0][3], aspect = D.a.width / D.a.height;
    let fw = pw, fh = pw / aspect;
    if (fh > ph) { fh = ph; fw = ph * aspect; }
    fit = { w: fw, h: fh, pw, ph, boxes };
    const mx = Math.max(0, (fw * S.zoom - pw) / 2), my = Math.max(0, (fh * S.zoom - ph) / 2);
    S.panX = clamp(S.panX, -mx, mx);
    S.panY = clamp(S.panY, -my, my);
    boxes.forEach((b, i) => {
      Object.assign(panes[i].style, { left: b[0] + 'px', top: b[1] + 'px', width: b[2] + 'px', height: b[3] + 'px' });
      Object.assign(contents[i].style, {
        width: fw + 'px', height: fh + 'px', left: (pw - fw) / 2 + 'px', top: (ph - fh) / 2 + 'px',
        transform: `translate(${S.panX}px, ${S.panY}px) scale(${S.zoom})`,
      });
      contents[i].classList.toggle('pixelated', (fw * S.zoom) / sides[i].proxyWidth >= 2);
    });
    panes[1].style.clipPath = S.view === 'wipe' ? `inset(0 0 0 ${S.wipe * 100}%)` : 'none';
    panes[0].style.visibility = S.view === 'toggle' && S.shown === 'B' ? 'hidden' : 'visible';
    panes[1].style.visibility = S.view === 'toggle' && S.shown === 'A' ? 'hidden' : 'visible';
    handle.hidden = S.view !== 'wipe';
    handle.style.left = S.wipe * W + 'px';
    handle.setAttribute('aria-valuenow', Math.round(S.wipe * 100));
    const fx = (q) => ((q - S.panX) / S.zoom) / fw + 0.5, fy = (q) => ((q - S.panY) / S.zoom) / fh + 0.5;
    S.region = { x0: clamp(fx(-pw / 2), 0, 1), x1: clamp(fx(pw / 2), 0, 1),
                 y0: clamp(fy(-ph / 2), 0, 1), y1: clamp(fy(ph / 2), 0, 1) };
    $('zoomText').textContent = S.zoom === 1 ? 'fit' : (S.zoom < 10 ? S.zoom.toFixed(1) : Math.round(S.zoom)) + '×';
    document.querySelectorAll('#views button').forEach((b) => b.classList.toggle('on', b.dataset.view === S.view));
  }

  function setView(v) {
    if (!['wipe', 'side', 'toggle'].includes(v)) return;
    S.view = v;
    layout();
  }

  function setWipe(f) { S.wipe = clamp(f, 0, 1); layout(); }

  function flip() {
    if (S.view !== 'toggle') S.view = 'toggle';
    else S.shown = S.shown === 'A' ? 'B' : 'A';
    layout();
  }

  // zoom to z keeping the picture point under (qx, qy) (pixels from the pane's centre) in place
  function zoomAt(z, qx = 0, qy = 0) {
    z = clamp(z, 1, 64);
    const k = z / S.zoom;
    S.panX = qx - k * (qx - S.panX);
    S.panY = qy - k * (qy - S.panY);
    S.zoom = z;
    layout();
  }

  function paneAt(clientX, clientY) {
    const r = stage.getBoundingClientRect();
    const x = clientX - r.left, y = clientY - r.top;
    const i = S.view === 'side' && x > r.width / 2 ? 1 : 0;
    const b = fit.boxes[i];
    return { qx: x - b[0] - b[2] / 2, qy: y - b[1] - b[3] / 2 };
  }

  // ------------------------------------------------------------------ curves
  function drawCurves() {
    const clock = `frame ${S.frame + 1} / ${S.frames} · ${fmtTime(S.time)} / ${fmtTime(S.duration)}`;
    $('clock').textContent = still ? '' : clock;
    if (still || !curves.clientWidth) return;
    const dpr = window.devicePixelRatio || 1;
    const w = Math.round(curves.clientWidth * dpr), h = Math.round(curves.clientHeight * dpr);
    if (curves.width !== w || curves.height !== h) { curves.width = w; curves.height = h; }
    const g = curves.getContext('2d');
    g.clearRect(0, 0, w, h);
    const pad = 6 * dpr, top = 16 * dpr;
    const [x0, x1] = curveSpan().map((x) => x * dpr);
    const X = (f) => x0 + (S.frames > 1 ? f / (S.frames - 1) : 0.5) * (x1 - x0);  // f: frame of the clock
    const Y = (l) => h - pad - (l / 255) * (h - pad - top);
    g.strokeStyle = '#2a2e34'; g.lineWidth = 1;
    for (const l of [0, 64, 128, 192, 255]) { g.beginPath(); g.moveTo(pad, Y(l)); g.lineTo(w - pad, Y(l)); g.stroke(); }
    const colours = ['#f0b34a', '#5ec8e6'];
    sides.forEach((s, i) => {
      g.strokeStyle = colours[i]; g.lineWidth = 1.5 * dpr; g.beginPath();
      s.luma.forEach((l, k) => { const x = X((k * S.fps) / s.fps), y = Y(l); if (k) g.lineTo(x, y); else g.moveTo(x, y); });
      if (s.luma.length === 1) g.arc(X(0), Y(s.luma[0]), 2 * dpr, 0, 7);
      g.stroke();
    });
    const x = X(S.paused ? S.frame : S.time * S.fps);
    g.strokeStyle = '#fff'; g.lineWidth = dpr; g.beginPath(); g.moveTo(x, top - 4 * dpr); g.lineTo(x, h); g.stroke();
    const at = (s) => s.luma[clamp(Math.floor(S.time * s.fps + 1e-6), 0, s.frames - 1)];
    g.font = `${11 * dpr}px system-ui, sans-serif`; g.textBaseline = 'top';
    g.fillStyle = '#8a919b'; g.fillText('mean luma (0–255)', pad, 2 * dpr);
    const t1 = `A ${at(D.a).toFixed(1)}`, t2 = `B ${at(D.b).toFixed(1)}`;
    const tx = pad + 120 * dpr;
    g.fillStyle = colours[0]; g.fillText(t1, tx, 2 * dpr);
    g.fillStyle = colours[1]; g.fillText(t2, tx + g.measureText(t1).width + 12 * dpr, 2 * dpr);
  }

  // the curves' x range in CSS pixels of the canvas: under the seek bar's thumb positions
  function curveSpan() {
    const c = curves.getBoundingClientRect(), r = seekBar.getBoundingClientRect(), thumb = 8;
    if (r.width < 2 * thumb + 10) return [6, c.width - 6];
    return [r.left - c.left + thumb, r.right - c.left - thumb];
  }

  function fmtTime(t) {
    const m = Math.floor(t / 60), s = t - 60 * m;
    return `${m}:${s.toFixed(3).padStart(6, '0')}`;
  }

  // ------------------------------------------------------------------ input
  let drag = null;
  stage.addEventListener('pointerdown', (e) => {
    if (e.button !== 0 || !S.ready) return;
    stage.setPointerCapture(e.pointerId);
    const onHandle = e.target === handle || handle.contains(e.target);
    drag = { wipe: onHandle && S.view === 'wipe', x: e.clientX, y: e.clientY, panX: S.panX, panY: S.panY, moved: false };
    if (!drag.wipe) stage.classList.add('panning');
    e.preventDefault();
  });
  stage.addEventListener('pointermove', (e) => {
    if (!drag) return;
    const dx = e.clientX - drag.x, dy = e.clientY - drag.y;
    if (Math.abs(dx) + Math.abs(dy) > 3) drag.moved = true;
    if (drag.wipe) {
      const r = stage.getBoundingClientRect();
      setWipe((e.clientX - r.left) / r.width);
    } else if (S.zoom > 1) {
      S.panX = drag.panX + dx; S.panY = drag.panY + dy; layout();
    }
  });
  const endDrag = () => {
    if (drag && !drag.wipe && !drag.moved && S.view === 'toggle') flip();
    drag = null; stage.classList.remove('panning');
  };
  stage.addEventListener('pointerup', endDrag);
  stage.addEventListener('pointercancel', endDrag);
  stage.addEventListener('wheel', (e) => {
    e.preventDefault();
    const { qx, qy } = paneAt(e.clientX, e.clientY);
    zoomAt(S.zoom * Math.exp(-e.deltaY * (e.deltaMode ? 0.05 : 0.002)), qx, qy);
  }, { passive: false });
  stage.addEventListener('dblclick', (e) => {
    const { qx, qy } = paneAt(e.clientX, e.clientY);
    if (S.zoom > 1) zoomAt(1); else zoomAt(4, qx, qy);
  });

  document.addEventListener('keydown', (e) => {
    if (e.ctrlKey || e.metaKey || e.altKey) return;
    const onSeek = e.target === seekBar;
    let done = true;
    switch (e.key) {
      case ' ': case 'k': togglePlay(); break;
      case ',': case '<': step(-1); break;
      case '.': case '>': step(1); break;
      case 'Home': if (onSeek) done = false; else seekFrame(0); break;
      case 'End': if (onSeek) done = false; else seekFrame(S.frames - 1); break;
      case 'ArrowLeft': case '[':
        if (onSeek) done = false; else setWipe(S.wipe - (e.shiftKey ? 0.1 : 0.02)); break;
      case 'ArrowRight': case ']':
        if (onSeek) done = false; else setWipe(S.wipe + (e.shiftKey ? 0.1 : 0.02)); break;
      case '1': setView('wipe'); break;
      case '2': setView('side'); break;
      case '3': setView('toggle'); break;
      case 't': case 'T': flip(); break;
      case '+': case '=': zoomAt(S.zoom * 1.5); break;
      case '-': case '_': zoomAt(S.zoom / 1.5); break;
      case '0': zoomAt(1); break;
      default: done = false;
    }
    if (done) e.preventDefault();
  });

  $('play').onclick = togglePlay;
  $('prev').onclick = () => step(-1);
  $('next').onclick = () => step(1);
  $('zoomIn').onclick = () => zoomAt(S.zoom * 1.5);
  $('zoomOut').onclick = () => zoomAt(S.zoom / 1.5);
  $('zoomFit').onclick = () => zoomAt(1);
  document.querySelectorAll('#views button').forEach((b) => { b.onclick = () => setView(b.dataset.view); });
  seekBar.addEventListener('input', () => seekFrame(+seekBar.value));
  let curveDrag = false;
  const seekFromCurves = (e) => {
    const r = curves.getBoundingClientRect(), [x0, x1] = curveSpan();
    seekFrame(Math.round(clamp((e.clientX - r.left - x0) / (x1 - x0), 0, 1) * (S.frames - 1)));
  };
  curves.addEventListener('pointerdown', (e) => { curveDrag = true; curves.setPointerCapture(e.pointerId); seekFromCurves(e); });
  curves.addEventListener('pointermove', (e) => { if (curveDrag) seekFromCurves(e); });
  curves.addEventListener('pointerup', () => { curveDrag = false; });
  window.addEventListener('resize', () => { layout(); drawCurves(); });

  // ------------------------------------------------------------------ start
  window.stprCompare = { state: S, play, pause, togglePlay, seekFrame, step, setView, setWipe, flip, zoomAt, layout,
                         seek: (t) => seekFrame(Math.floor(t * S.fps + 1e-6)), data: D };
  layout();
  Promise.all(sides.map(load)).then((loaded) => {
    els = loaded;
    loaded.forEach((el, i) => contents[i].appendChild(el));
    vids = still ? [] : loaded;
    vids.forEach(watchFrames);
    if (!still) {
      seekBar.max = S.frames - 1;
      vids[master].addEventListener('ended', () => { if (!S.paused) { pause(false); seekFrame(S.frames - 1); } });
    }
    layout();
    return seekFrame(0);
  }).then(() => {
    S.ready = true;
    $('loading').hidden = true;
    drawCurves();
  }).catch((e) => {
    S.error = String(e.message || e);
    $('loading').textContent = S.error;
  });
})();
