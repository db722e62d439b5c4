#!/usr/bin/python3
"""console-check.py: drive reco-serve's console in headless Chromium and print what it shows, as JSON.

usage: console-check.py BASE USER ITEM [--token T] [--shots DIR]

BASE is the server's URL (http://127.0.0.1:PORT). The script opens the user
view for USER, the item view for ITEM and the live view, sends a burst of
/recommend requests while the live view polls, and prints one JSON object:
the recommendations, profile and per-source lists the user view shows, the
item view's lists, and the points each live plot has drawn. With --shots,
a screenshot of each view goes to DIR (console-user.png, console-item.png,
console-live.png).
"""
import json
import sys
import threading
import time
import urllib.request

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait


def main():
    args = sys.argv[1:]
    token = shots = None
    if '--token' in args:
        k = args.index('--token')
        token = args[k + 1]
        del args[k:k + 2]
    if '--shots' in args:
        k = args.index('--shots')
        shots = args[k + 1]
        del args[k:k + 2]
    base, user, item = args
    opts = webdriver.ChromeOptions()
    opts.binary_location = '/usr/bin/chromium'
    for a in ('--headless=new', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage',
              '--window-size=1280,1100', '--no-first-run', '--disable-extensions'):
        opts.add_argument(a)
    d = webdriver.Chrome(service=Service('/usr/bin/chromedriver'), options=opts)
    out = {}
    try:
        wait = WebDriverWait(d, 20)
        d.get(base + '/console/' + ('?token=' + token if token else ''))
        d.get(base + '/console/#/user/' + urllib.request.quote(user, safe=''))
        wait.until(lambda d: d.find_elements(By.ID, 'recs') or d.find_elements(By.ID, 'error'))
        err = d.find_elements(By.ID, 'error')
        if err:
            raise SystemExit('console-check: the user view says: ' + err[0].text)
        rows = d.find_elements(By.CSS_SELECTOR, '#recs tbody tr')
        out['recs'] = [[r.get_attribute('data-item'), float(r.get_attribute('data-score')),
                        r.get_attribute('data-reason')] for r in rows]
        out['history'] = [r.get_attribute('data-item') for r in
                          d.find_elements(By.CSS_SELECTOR, '#history tbody tr')]
        out['purchases'] = [r.get_attribute('data-item') for r in
                            d.find_elements(By.CSS_SELECTOR, '#purchases tbody tr')]
        ev = d.find_elements(By.ID, 'profile-events')
        out['profile_events'] = int(ev[0].text) if ev else None
        out['counts'] = d.find_element(By.ID, 'counts').text if ev else None
        out['sources'] = {}
        for t in d.find_elements(By.CSS_SELECTOR, '[id^="src-"]'):
            out['sources'][t.get_attribute('id')[4:]] = [
                r.get_attribute('data-item') for r in t.find_elements(By.CSS_SELECTOR, 'tbody tr')]
        if shots:
            d.save_screenshot(shots + '/console-user.png')

        d.get(base + '/console/#/item/' + urllib.request.quote(item, safe=''))
        wait.until(lambda d: d.find_elements(By.ID, 'attrs') or d.find_elements(By.ID, 'error'))
        out['item'] = {
            'attrs': {e.get_attribute('data-attr'): e.text
                      for e in d.find_elements(By.CSS_SELECTOR, '#attrs dd')},
        }
        for lst in ('cooc', 'next', 'factors'):
            out['item'][lst] = [r.get_attribute('data-item') for r in
                                d.find_elements(By.CSS_SELECTOR, '#' + lst + ' tbody tr')]
        if shots:
            d.save_screenshot(shots + '/console-item.png')

        d.get(base + '/console/#/live')
        wait.until(lambda d: d.find_elements(By.ID, 'plot-rps'))
        time.sleep(2.2)

        def burst():
            for k in range(300):
                with urllib.request.urlopen(base + '/recommend?user=u%d&n=5' % (k % 4)) as r:
                    r.read()
                if k % 50 == 49:
                    time.sleep(0.3)
        th = threading.Thread(target=burst)
        th.start()
        th.join()
        time.sleep(2.5)
        # Read the plots in one script: the page redraws them every poll, so
        # elements found in one call may be gone by the next.
        live = d.execute_script("""
            var out = {live: {}, variants: []};
            document.querySelectorAll('svg.plot polyline[data-series]').forEach(function (pl) {
                out.live[pl.getAttribute('data-series')] = pl.getAttribute('points') || '';
            });
            document.querySelectorAll('#variants tbody tr').forEach(function (r) {
                out.variants.push(r.getAttribute('data-variant'));
            });
            return out;""")
        out['live'] = {}
        for series, points in live['live'].items():
            pts = [tuple(map(float, p.split(','))) for p in points.split()]
            out['live'][series] = {
                'points': len(pts),
                # a point above the baseline: the plot shows something
                'raised': sum(1 for x, y in pts if y < 124 - 0.5),
            }
        out['variants'] = live['variants']
        if shots:
            d.save_screenshot(shots + '/console-live.png')
    finally:
        d.quit()
    json.dump(out, sys.stdout, sort_keys=True)
    print()


if __name__ == '__main__':
    main()
