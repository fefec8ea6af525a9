// Progressive enhancement of the footage section: without this script every timeline link
// reloads the page with the chosen segment and start time (the #t= media fragment).
(function () {
  "use strict";
  var video = document.querySelector("video[data-testid=player]");
  if (!video) { return; }
  var base = video.getAttribute("data-stream-base");

  function seek(mediaId, seconds) {
    var at = Math.max(0, parseFloat(seconds) || 0);
    if (video.getAttribute("data-media") !== mediaId) {
      video.setAttribute("data-media", mediaId);
      video.src = base.replace("MEDIA_ID", encodeURIComponent(mediaId));
      var sheet = document.querySelector("img[data-testid=contact-sheet]");
      if (sheet) { sheet.src = base.replace("MEDIA_ID/stream", encodeURIComponent(mediaId) + "/contact-sheet.jpg"); }
      video.addEventListener("loadedmetadata", function once() {
        video.removeEventListener("loadedmetadata", once);
        video.currentTime = at;
      });
      video.load();
    } else {
      video.currentTime = at;
    }
    video.scrollIntoView({ block: "nearest" });
  }

  document.addEventListener("click", function (event) {
    var link = event.target.closest ? event.target.closest("a.seek") : null;
    if (!link || !link.getAttribute("data-media")) { return; }
    event.preventDefault();
    seek(link.getAttribute("data-media"), link.getAttribute("data-t"));
  });
})();
